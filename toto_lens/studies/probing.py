"""`studies.probing`: where in depth the features sit (appendix Fig. 9), from an activation cache."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from toto_lens.progress import Progress
from toto_lens.studies.base import Study, StudyError, Summary, names, open_study_cache, provenance


def seed_list(seeds: int | Sequence[int]) -> list[int]:
    """One number N is N seeds (0 … N-1); several numbers are the seeds themselves."""
    values = [seeds] if isinstance(seeds, int) else list(seeds)
    if not values or (len(values) == 1 and values[0] < 1):
        raise StudyError("--seeds must be a positive number of seeds, or several seeds")
    return list(range(values[0])) if len(values) == 1 else list(dict.fromkeys(values))


def probing(
    ckpt: str | os.PathLike | None = None,
    *,
    cache: Any = None,
    dataset: str | None = None,
    tasks: str | Sequence[str] = ("digit", "motion"),
    probes: str | Sequence[str] = ("linear",),
    seeds: int | Sequence[int] = 3,
    layers: str | Sequence[int] = "all",
    epochs: int = 10,
    progress: Progress | None = None,
) -> Study:
    """Probe every layer of a checkpoint's cache (or `cache`: a store path or an opened Dataset).

    One curve per task and probe over layer and depth, mean ± std over seeds, scored on held-out clips;
    the summary gives each curve's best layer. Options as `toto-lens probe`.
    """
    from toto_lens.analysis.attention_probes import AttentionConfig
    from toto_lens.analysis.probing import probe_layers
    from toto_lens.figures.probing import probing_figure
    from toto_lens.run.layers import parse_layers

    ds = open_study_cache(ckpt, cache, dataset)
    layer_list = None
    if not (isinstance(layers, str) and layers.strip() == "all"):
        layer_list = parse_layers(layers, int(ds.attrs["model_config"]["n_layers"]))
    task_list, probe_list, seed_values = names(tasks), names(probes), seed_list(seeds)
    result = probe_layers(
        ds, tasks=task_list, probes=probe_list, seeds=seed_values, layers=layer_list,
        attention=AttentionConfig(epochs=epochs), progress=progress,
    )  # fmt: skip
    opts = {
        "tasks": task_list,
        "probes": probe_list,
        "seeds": seed_values,
        "layers": layers,
        "epochs": epochs,
    }
    result.attrs.update(provenance("probing", ds, **opts))
    return Study("probing", result, [probing_figure(result)], probing_summary(result))


def probing_summary(result: Any) -> Summary:
    """The best layer of each (task, probe) curve, its depth, seed-mean ± std val score and chance."""
    from toto_lens.analysis.probing import best_layer, summarise

    summary = summarise(result)
    rows = []
    for t in result["task"].values:
        for p in result["probe"].values:
            if not summary["val_mean"].sel(task=t, probe=p).notnull().any():
                continue  # a probe that does not apply to this task
            layer = best_layer(result, str(t), str(p))
            pick = summary.sel(task=t, probe=p, layer=layer)
            rows.append(
                {
                    "task": str(t), "probe": str(p), "metric": str(result["metric"].sel(task=t).values),
                    "best_layer": layer, "depth": float(result["depth"].sel(layer=layer)),
                    "val_mean": float(pick["val_mean"]), "val_std": float(pick["val_std"]),
                    "chance": float(result["chance"].sel(task=t)),
                }
            )  # fmt: skip
    table = [
        [r["task"], r["probe"], str(r["best_layer"]), f"{r['depth']:.2f}",
         f"{r['val_mean']:.3f} ± {r['val_std']:.3f} {r['metric']}", f"{r['chance']:.3f}"]
        for r in rows
    ]  # fmt: skip
    return Summary(
        title=f"best layer per task and probe ({len(result['seed'])} seeds)",
        columns=["task", "probe", "best layer", "depth", "val (mean ± std)", "chance"],
        rows=table,
        data={"rows": rows},
    )
