"""Training checkpoints: the model checkpoint plus what exact resumption needs, full and sharded.

A run named NAME lives in one checkpoint folder (`cache/checkpoints/NAME/`), rewritten atomically, so a
SIGKILL at any moment leaves the last complete one loadable by `load_checkpoint(NAME)`. Beside the model
it holds `optimizer.safetensors` (AdamW moments by parameter name, the torch RNG state),
`optimizer_groups.json` (AdamW hyperparameters) and `train_log.jsonl`; `config.json`'s `training` field
records the TrainConfig, the step reached and whether the run is complete. The batch of a step depends
only on (seed, step), so the step is the whole data position. Writing it gathers the whole model and
optimizer state into rank 0 (`save_state`).

An FSDP run (`TrainConfig.sharded`) keeps sharded checkpoints beside it, in `NAME.dcp/step-N/` (as
torchtitan's `checkpoint/step-N/`), in torch's distributed checkpoint format
(`torch.distributed.checkpoint`, DCP): each rank writes its own shards of the weights and AdamW moments
(`__<rank>_0.distcp`) with the step and the RNG state; rank 0 adds DCP's `.metadata` and, as JSON,
`training.json` (the same `training` record) and the log. A save is written into `.step-N.tmp/` and
renamed to `step-N/` only once every rank has finished (a barrier); older steps are removed after that,
so a crash at any moment leaves the previous one whole. Nothing is gathered into one process, neither
to save nor to resume (`save_sharded`, `load_sharded`; DCP reshards when the process count changes;
`read_sharded` reads one whole without a process group). It is the one place where torch's own format
is used: DCP pickles its `.metadata` and reads tensors with `torch.load(weights_only=True)`. The metadata
is read back by `SafeReader`, whose unpickler builds only DCP's own metadata classes, torch sizes,
dtypes and layouts, and paths, and refuses anything else in one line, so a sharded folder cannot make
a resume run code (as plain `pickle`, which DCP's own reader uses, would). It exists to resume one's own
runs, never to be shared; the safetensors checkpoint stays the interchange format that `extract`,
`load_checkpoint` and every other command read.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from toto_lens import distributed as D
from toto_lens.checkpoints import read_extra, read_metadata, save_checkpoint
from toto_lens.errors import CheckpointError, ConfigError, TotoLensError
from toto_lens.io import read_json, rename_over, to_json
from toto_lens.train.config import TrainConfig

LOG = "train_log.jsonl"
GROUPS = "optimizer_groups.json"  # AdamW hyperparameters per group, by parameter name
TRAINING = "training.json"  # the sharded checkpoint's `training` record
DCP_REDO = "the sharded checkpoint is damaged; delete it to resume from the full one, or pass --overwrite"


def dcp_path(folder: Path) -> Path:
    """The folder of the sharded (DCP) checkpoints of the run in `folder`: `NAME.dcp/` beside `NAME/`."""
    return folder.parent / f"{folder.name}.dcp"


def latest_sharded(folder: Path) -> Path | None:
    """The newest sharded checkpoint of the run in `folder` (`NAME.dcp/step-N/`), or None."""
    steps = [p for p in dcp_path(folder).glob("step-*") if p.name[5:].isdigit() and p.is_dir()]
    return max(steps, key=lambda p: int(p.name[5:]), default=None)


def saved_points(folder: Path) -> list[tuple[dict[str, Any], Path]]:
    """(training record, folder) of the run's full checkpoint and of its newest sharded one, those that
    exist; the newer last (the sharded one on a tie: resuming from it gathers nothing)."""
    found = []
    if folder.exists():
        found.append((read_metadata(folder).get("training") or {}, folder))
    sharded = latest_sharded(folder)
    if sharded is not None:
        found.append((read_json(sharded / TRAINING, redo=DCP_REDO, error=CheckpointError), sharded))
    return sorted(found, key=lambda tp: (int(tp[0].get("step", 0)), tp[1] == sharded))


def latest_saved(folder: Path) -> tuple[dict[str, Any], Path] | None:
    """The newest of `saved_points`, or None (also when a record cannot be read)."""
    try:
        points = saved_points(folder)
    except TotoLensError:
        return None
    return points[-1] if points else None


def resume_point(folder: Path, cfg: TrainConfig, overwrite: bool) -> dict[str, Any] | None:
    """The `training` record of an unfinished run of the same config, from the newer of its full and
    sharded checkpoints (`"source"`: the folder to resume from), or None to start fresh."""
    if overwrite:
        return None
    points = saved_points(folder)
    if not points:
        return None
    for training, where in points:
        if training.get("complete", True) or training.get("config") is None:
            step = training.get("step", "?")
            raise ConfigError(
                f"checkpoint {where} already exists (a finished run, step {step}); pass --overwrite to "
                "train it again or choose another --name"
            )
    training, where = points[-1]
    changed = cfg.resumable_with(TrainConfig.from_dict(training["config"]))
    if changed:
        raise ConfigError(
            f"{where} holds an unfinished run with other settings ({', '.join(changed)}); rerun with the "
            "same settings to resume it, or pass --overwrite to start over"
        )
    return {**training, "source": str(where)}


def save_state(
    folder: Path,
    model,
    raw_model,
    optimizer,
    training: dict[str, Any],
    log_rows: list[dict[str, Any]],
    tokenizer,
    is_main: bool,
    weights: dict[str, Any] | None = None,
) -> None:
    """Gather full model and optimizer state (a collective under DDP/FSDP); rank 0 writes the folder.
    `weights`: the full model state already gathered at this step (by a snapshot), not gathered again."""
    import torch
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    if weights is None:
        weights = get_model_state_dict(model, options=full_options())
    opt = get_optimizer_state_dict(model, optimizer, options=full_options())
    if not is_main:
        return
    tensors = {f"state.{name}.{key}": value for name, st in opt["state"].items() for key, value in st.items()}
    tensors["rng.torch"] = torch.get_rng_state()
    groups = [
        {k: v for k, v in g.items() if k != "params"} | {"params": list(g["params"])}
        for g in opt["param_groups"]
    ]
    save_checkpoint(
        raw_model,
        folder,
        tokenizer=tokenizer.spec,
        tokenizer_state=tokenizer.state_dict(),
        training=training,
        overwrite=True,
        weights=weights,
        extras={"optimizer": tensors},
        files={LOG: _jsonl(log_rows), GROUPS: json.dumps(groups, indent=1)},
    )


def load_state(folder: Path, model, optimizer) -> None:
    """Put the optimizer moments and the RNG state of `folder` back (weights are loaded with the model)."""
    import torch
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    tensors = read_extra(folder, "optimizer")
    state: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("state."):
            name, _, field = key[len("state.") :].rpartition(".")
            state.setdefault(name, {})[field] = value
    groups = read_json_list(folder / GROUPS)
    set_optimizer_state_dict(
        model, optimizer, {"state": state, "param_groups": groups}, options=full_options()
    )
    torch.set_rng_state(tensors["rng.torch"])


def save_sharded(
    folder: Path,
    model,
    optimizer,
    training: dict[str, Any],
    log_rows: list[dict[str, Any]],
    info: D.DistInfo,
) -> Path:
    """Every rank writes its shards of the weights and AdamW moments into `NAME.dcp/step-N/` (a
    collective): into `.step-N.tmp/` first, renamed by rank 0 after a barrier, which then removes the
    older steps. Returns the new folder."""
    import torch
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    root = dcp_path(folder)
    target, tmp = root / f"step-{training['step']}", root / f".step-{training['step']}.tmp"
    if info.main:  # what a killed save of this step left
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    D.barrier(info)
    weights, opt = get_state_dict(model, optimizer)  # this rank's shards under FSDP, no gathering
    state = {
        "model": weights,
        "optimizer": opt["state"],  # the groups' hyperparameters follow from the config
        "step": torch.tensor(int(training["step"]), dtype=torch.int64),
        "rng": torch.get_rng_state(),
    }
    with _quiet():
        dcp.save(state, storage_writer=dcp.FileSystemWriter(str(tmp)), no_dist=not info.active)
    if info.main:
        for name, text in (
            (TRAINING, to_json(training, "training record", CheckpointError)),
            (LOG, _jsonl(log_rows)),
        ):
            with open(tmp / name, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
    D.barrier(info)  # every rank's shards are on disk
    if info.main:
        rename_over(tmp, target)  # a step saved before only by a run started over with --overwrite
        for old in [*root.glob("step-*"), *root.glob(".step-*")]:  # and what killed saves left
            if old != target:
                shutil.rmtree(old, ignore_errors=True)
    return target


def load_sharded(source: Path, model, optimizer, step: int, info: D.DistInfo) -> None:
    """Read the shards this rank owns from `source` (`NAME.dcp/step-N/`) into the (wrapped) model and its
    optimizer, and put the RNG state back; `step` is the step its training record names."""
    import torch
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    check_metadata(source)  # a tampered or missing .metadata is refused here, in one line, before DCP
    weights, opt = get_state_dict(model, optimizer)  # the shapes and placements to read into
    state = {
        "model": weights,
        "optimizer": opt["state"],
        "step": torch.zeros((), dtype=torch.int64),
        "rng": torch.get_rng_state(),
    }
    try:
        with _quiet():
            dcp.load(state, storage_reader=safe_reader(source), no_dist=not info.active)
    except Exception as e:  # DCP raises CheckpointException, RuntimeError, KeyError … on a bad folder
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{source} cannot be read ({first[:200]}); {DCP_REDO}") from None
    if int(state["step"]) != step:
        raise CheckpointError(
            f"{source} holds step {int(state['step'])} but its {TRAINING} says {step}; {DCP_REDO}"
        )
    set_state_dict(
        model,
        optimizer,
        model_state_dict=state["model"],
        optim_state_dict={"state": state["optimizer"], "param_groups": opt["param_groups"]},
    )
    torch.set_rng_state(state["rng"])


def read_sharded(source: Path, template: dict[str, Any]) -> dict[str, Any]:
    """The sharded checkpoint `source` (`NAME.dcp/step-N/`) read whole into this process, with no process
    group, in the nested layout of `template` (`{"model": state dict, "optimizer": {name: {"exp_avg": …}},
    "step": …, "rng": …}`, or any part of it), into zero tensors of the template's shapes: how a sharded
    checkpoint is compared with, or turned into, a full one."""
    import torch
    import torch.distributed.checkpoint as dcp

    def zeros(x):
        return {k: zeros(v) for k, v in x.items()} if isinstance(x, dict) else torch.zeros_like(x)

    state = zeros(template)
    check_metadata(source)
    with _quiet():
        dcp.load(state, storage_reader=safe_reader(source), no_dist=True)
    return state


@contextmanager
def _quiet():
    """DCP warns that it works in one process whenever there is no process group, as asked."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


def full_options():
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def _jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def read_json_list(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise ConfigError(
            f"{path} is missing: this checkpoint cannot resume training; pass --overwrite to start over"
        )
    return json.loads(path.read_text())


def read_log(folder: Path, upto_step: int) -> list[dict[str, Any]]:
    """Rows of the saved log up to a step: a resumed run's log then reads as one uninterrupted run."""
    path = folder / LOG
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["step"] <= upto_step]


# What a DCP `.metadata` pickle may name: DCP's metadata classes, torch sizes, dtypes and layouts, paths.
_SAFE_GLOBALS = {("torch", "Size"), ("torch.serialization", "_get_layout"), ("collections", "OrderedDict"),
                 ("pathlib", "PosixPath"), ("pathlib", "PurePosixPath"), ("pathlib", "Path")}  # fmt: skip


def check_metadata(source: Path) -> None:
    """Read `source`'s `.metadata` through `safe_reader`: a CheckpointError naming what is wrong, if anything."""
    try:
        safe_reader(source).read_metadata()
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - missing, truncated: pickle and the filesystem raise many kinds
        raise CheckpointError(f"{source}/.metadata cannot be read ({type(e).__name__}); {DCP_REDO}") from None


def safe_reader(source: Path):
    """DCP's FileSystemReader for `source`, reading `.metadata` with a restricted unpickler."""
    import pickle

    import torch
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.metadata import StorageMeta

    class _Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            dcp_class = module.startswith("torch.distributed.checkpoint.") and not name.startswith("__")
            dtype = module == "torch" and isinstance(getattr(torch, name, None), torch.dtype)
            if not (dcp_class or dtype or (module, name) in _SAFE_GLOBALS):
                raise CheckpointError(
                    f"{source}/.metadata names {module}.{name}, which a sharded checkpoint never holds; "
                    f"it was not written by toto-lens train and is not read ({DCP_REDO})"
                )
            return super().find_class(module, name)

    class SafeReader(dcp.FileSystemReader):
        def read_metadata(self, *args: Any, **kwargs: Any) -> Any:
            path = self._get_metadata_path(kwargs.get("rank"))
            with self.fs.create_stream(path, "rb") as f:
                metadata = _Unpickler(f).load()
            if getattr(metadata, "storage_meta", None) is None:
                metadata.storage_meta = StorageMeta()
            metadata.storage_meta.load_id = self.load_id
            return metadata

    return SafeReader(str(source))
