"""The family's checkpoints and activation caches: trained, their untrained copies, extracted once.

Each is a step (`steps.py`): `train/<size>` trains (or resumes, or keeps) the run `report-<family>-<size>`,
`init/<size>` writes its untrained copy, `extract/<size>[-untrained]/<dataset>` its caches. A checkpoint
finished with the same settings is kept as it is; one with other settings is trained again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from toto_lens.progress import Progress
from toto_lens.report.family import Family, Size
from toto_lens.report.steps import Steps

# The two caches every trained size and its copy get: videos (tasks, tracking, redundancy, generation
# from [1]) and image sequences (image classification, Fig. 15's [3]).
DATASETS = {"video": ("moving-digits", "val"), "images": ("image-digits", "val")}


def dataset_name(kind: str) -> str:
    source, split = DATASETS[kind]
    return f"{source}-{split}"


def _weights_sha(name: str) -> str | None:
    from toto_lens.checkpoints import read_metadata
    from toto_lens.checkpoints.folder import resolve_checkpoint
    from toto_lens.errors import TotoLensError

    try:
        return read_metadata(resolve_checkpoint(name)).get("weights_sha256")
    except TotoLensError:
        return None


def train_size(family: Family, size: Size, steps: Steps, progress: Progress | None) -> dict[str, Any]:
    """Train the size (or keep its finished run of the same settings); its output names the weights."""
    cfg = family.train_config(size)
    name = family.checkpoint(size)

    def run() -> dict[str, Any]:
        from toto_lens.checkpoints import read_metadata
        from toto_lens.checkpoints.folder import checkpoint_path
        from toto_lens.train import TrainConfig, train

        folder = checkpoint_path(name)
        training = (read_metadata(folder).get("training") or {}) if (folder / "config.json").exists() else {}
        saved = TrainConfig.from_dict(training["config"]) if training.get("config") else None
        same = saved is not None and not cfg.resumable_with(saved)
        if not (same and training.get("complete")):
            train(cfg, name, overwrite=not (same and not training.get("complete")), progress=progress)
        meta = read_metadata(folder)
        model = meta["model"]
        return {
            "checkpoint": name, "sha256": meta.get("weights_sha256"), "model": size.describe,
            "params": model.num_params(), "params_non_embedding": model.num_params(embeddings=False),
            "width": model.dim, "layers": model.n_layers, "heads": model.n_heads,
            "val_loss": (meta.get("training") or {}).get("metrics", {}).get("val_loss"),
        }  # fmt: skip

    record = steps.run(
        f"train/{size.label}", {"config": cfg.to_dict(), "name": name}, run,
        what=f"train {name} ({size.describe}, {cfg.steps} steps of {cfg.batch_size} clips)",
        exists=lambda: _weights_sha(name) is not None,
    )  # fmt: skip
    if record.output.get("sha256") != _weights_sha(name):  # changed on disk since: train again
        record = steps.run(f"train/{size.label}", {"config": cfg.to_dict(), "name": name}, run,
                           what=f"train {name} again (its weights changed)", force=True)  # fmt: skip
    return record.output


def untrained(family: Family, size: Size, trained: dict[str, Any], steps: Steps) -> dict[str, Any]:
    """The size's untrained copy: same config, tokenizer and data, fresh weights (`init --like`)."""
    name = family.checkpoint(size, untrained=True)

    def run() -> dict[str, Any]:
        from toto_lens.checkpoints import init_checkpoint

        init_checkpoint(name, like=trained["checkpoint"], seed=family["train"]["seed"], overwrite=True)
        return {"checkpoint": name, "sha256": _weights_sha(name)}

    record = steps.run(
        f"init/{size.label}", {"like": trained["sha256"], "name": name}, run,
        what=f"untrained copy {name}", exists=lambda: _weights_sha(name) is not None,
    )  # fmt: skip
    return record.output


def extract_caches(
    family: Family, ckpt: dict[str, Any], steps: Steps, progress: Progress | None
) -> dict[str, Any]:
    """Both caches of one checkpoint; their outputs name the store and the checkpoint's weights."""
    e = family["extract"]
    out = {}
    for kind, (source, split) in DATASETS.items():
        name = ckpt["checkpoint"]
        dataset = f"{source}-{split}"

        def run(source=source, split=split, name=name, dataset=dataset) -> dict[str, Any]:
            from toto_lens.run.extractor import extract

            result = extract(
                name, data=source, split=split, clips=e["clips"], batch_size=e["batch_size"],
                acts=("pooled", "frame", "token"), token_clips=e["token_clips"], overwrite=True,
                progress=progress,
            )  # fmt: skip
            return {"store": str(result.path), "clips": result.clips, "checkpoint": name, "dataset": dataset}

        def exists(name=name, dataset=dataset) -> bool:
            from toto_lens.store.reader import cache_path

            try:
                return Path(cache_path(name, dataset)).exists()
            except Exception:  # noqa: BLE001 - any reason the store is not there means extract again
                return False

        record = steps.run(
            f"extract/{name.removeprefix(f'report-{family.name}-')}/{kind}",
            {"weights": ckpt["sha256"], "settings": e, "dataset": dataset}, run,
            what=f"extract {name} on {dataset} ({e['clips']} clips)", exists=exists,
        )  # fmt: skip
        out[kind] = record.output
    return out
