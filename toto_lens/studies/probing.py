"""`studies.probing`: where in depth the features sit (appendix Fig. 9), from an activation cache."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from toto_lens.progress import Progress
from toto_lens.studies.base import (
    Study,
    StudyError,
    Summary,
    cache_args,
    command_line,
    names,
    open_study_cache,
    provenance,
)


def seed_list(seeds: int | Sequence[int]) -> list[int]:
    """One number N is N seeds (0 … N-1); several numbers are the seeds themselves."""
    values = [seeds] if isinstance(seeds, int) else list(seeds)
    if not values or (len(values) == 1 and values[0] < 1):
        raise StudyError("--seeds must be a positive number of seeds, or several seeds")
    return list(range(values[0])) if len(values) == 1 else list(dict.fromkeys(values))


def seeds_arg(seeds: list[int]) -> int | list[int]:
    """`--seeds` as the command line reads it back into `seeds`: a count for 0 … N-1, else the seeds."""
    return len(seeds) if seeds == list(range(len(seeds))) else seeds


def probing(
    ckpt: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    *,
    cache: Any = None,
    dataset: str | None = None,
    tasks: str | Sequence[str] | None = None,
    probes: str | Sequence[str] = ("linear",),
    seeds: int | Sequence[int] = 3,
    layers: str | Sequence[int] = "all",
    epochs: int = 10,
    progress: Progress | None = None,
) -> Study:
    """Probe every layer of a checkpoint's cache (or `cache`: a store path or an opened Dataset).

    One curve per task and probe over layer and depth, mean ± std over seeds, scored on held-out clips;
    the summary gives each curve's best layer. Several checkpoints (e.g. the trained model and its
    untrained copy, `toto-lens init --like`) are probed alike on their caches of the same dataset and
    stacked along `checkpoint`; the figure draws them side by side. Options as `toto-lens probe`;
    tasks None: digit and motion on the bundled data's caches, else every class label the cache's source
    declared (`label`, `frame_label`, a labels.csv column …), probed by name.
    """
    import xarray as xr

    from toto_lens.analysis.attention_probes import AttentionConfig
    from toto_lens.analysis.probing import probe_layers
    from toto_lens.figures.probing import probing_figure
    from toto_lens.io import dict_attr
    from toto_lens.run.layers import parse_layers

    many = isinstance(ckpt, list | tuple)
    ckpts = list(ckpt) if many else [ckpt]
    if many and (not ckpts or cache is not None):
        raise StudyError("probe several checkpoints by name (each reads its own cache), not with a cache")
    probe_list, seed_values = names(probes), seed_list(seeds)
    caches = [open_study_cache(one, cache, dataset) for one in ckpts]  # every store found before fitting
    task_list = names(tasks) if tasks is not None else default_tasks(caches[0])
    results = []
    for ds in caches:
        layer_list = None
        if not (isinstance(layers, str) and layers.strip() == "all"):
            layer_list = parse_layers(layers, int(dict_attr(ds.attrs, "model_config")["n_layers"]))
        result = probe_layers(
            ds, tasks=task_list, probes=probe_list, seeds=seed_values, layers=layer_list,
            attention=AttentionConfig(epochs=epochs), progress=progress,
        )  # fmt: skip
        opts = {"tasks": task_list, "probes": probe_list, "seeds": seed_values, "layers": layers}
        result.attrs.update(provenance("probing", ds, **opts, epochs=epochs))
        results.append(result)
    if many:
        labels = [r.attrs["checkpoint"] or str(c) for r, c in zip(results, ckpts, strict=True)]
        if len(set(labels)) != len(labels):
            raise StudyError(f"checkpoints {labels}: name each one once")
        result = xr.concat(
            results, dim=xr.Variable("checkpoint", labels), join="outer", coords="different",
            compat="equals", combine_attrs="drop_conflicts",
        )  # fmt: skip
        result.attrs["checkpoints"] = labels
        result.attrs["checkpoint_sha256s"] = [r.attrs.get("checkpoint_sha256", "") for r in results]
    else:
        result = results[0]
    result.attrs["command"] = command_line(
        "probe", *cache_args(None, cache, caches[0], dataset), "--ckpt", [str(c) for c in ckpts if c],
        "--task", ",".join(task_list), "--probe", ",".join(probe_list), "--seeds", seeds_arg(seed_values),
        "--layers", layers if isinstance(layers, str) else ",".join(map(str, layers)),
        "--epochs", epochs if "attention" in " ".join(probe_list) else None,
    )  # fmt: skip
    return Study("probing", result, [probing_figure(result)], probing_summary(result))


def probing_summary(result: Any) -> Summary:
    """The best layer of each (checkpoint, task, probe) curve, its depth, seed-mean ± std val score,
    chance, and the clips it was trained and scored on."""
    from toto_lens.analysis.probing import best_layer, summarise

    stacked = "checkpoint" in result.dims
    labels = [str(c) for c in result["checkpoint"].values] if stacked else [None]
    rows = []
    for label in labels:
        one = result.sel(checkpoint=label) if stacked else result
        if "depth" in one.coords and "checkpoint" in one["depth"].dims:
            one = one.assign_coords(depth=one["depth"])
        summary = summarise(one)
        for t in one["task"].values:
            for p in one["probe"].values:
                if not summary["val_mean"].sel(task=t, probe=p).notnull().any():
                    continue  # a probe that does not apply to this task (or a layer this model lacks)
                layer = best_layer(one, str(t), str(p))
                pick = summary.sel(task=t, probe=p, layer=layer)
                counts = {k: int(one[k].sel(task=t, probe=p).values.flat[0]) for k in ("n_train", "n_val")}
                rows.append(
                    {
                        **({"checkpoint": label} if stacked else {}),
                        "task": str(t), "probe": str(p), "metric": str(one["metric"].sel(task=t).values),
                        "best_layer": layer, "depth": float(one["depth"].sel(layer=layer)),
                        "val_mean": float(pick["val_mean"]), "val_std": float(pick["val_std"]),
                        "chance": float(one["chance"].sel(task=t)), **counts,
                    }
                )  # fmt: skip
    table = [
        [*([r["checkpoint"]] if stacked else []), r["task"], r["probe"], str(r["best_layer"]),
         f"{r['depth']:.2f}", f"{r['val_mean']:.3f} ± {r['val_std']:.3f} {r['metric']}", f"{r['chance']:.3f}",
         f"{r['n_train']}/{r['n_val']}"]
        for r in rows
    ]  # fmt: skip
    return Summary(
        title=f"best layer per task and probe ({len(result['seed'])} seeds)",
        columns=[
            *(["checkpoint"] if stacked else []),
            "task",
            "probe",
            "best layer",
            "depth",
            "val (mean ± std)",
            "chance",
            "clips train/val",
        ],  # fmt: skip
        rows=table,
        data={"rows": rows},
    )


def default_tasks(ds: Any) -> list[str]:
    """digit and motion where the cache has them (the bundled data), else the cache's own class labels."""
    from toto_lens.analysis.probe_inputs import label_tasks

    bundled = [t for t in ("digit", "motion") if t in ds.coords]
    if bundled:
        return bundled
    own = label_tasks(ds)
    if not own:
        raise StudyError("this cache has no class label to probe; name a task with --task")
    return own
