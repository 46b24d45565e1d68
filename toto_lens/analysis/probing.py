"""Layer probing curves: how well each layer's features decode a clip's labels (Toto appendix Fig. 9).

Follows PROTOCOLS.md ("Probing"): one probe per layer, on frozen features from the activation cache
(docs/cache-schema.md), scored on held-out clips, several seeds, x axis as layer and as fraction of depth.

Tasks (the registry `TASKS`; add one with `register_task`) read their targets from the cache's coordinates:

    digit        classification of `digit` (clip)
    motion       classification of `motion` (clip); image sequences (motion −1) have none and are dropped
    position     regression of object 0's `object_position` (row, col), averaged over frames; R²
    velocity     regression of object 0's `object_velocity`, averaged over frames; NaN clips dropped; R²
    frame_digit  classification of each frame's `frame_digit` from that frame's features

Position is the mean over frames, not the middle frame: `acts_pooled` averages the tokens of all frames,
so a feature that carries the position linearly in each frame carries the mean position linearly too,
while the middle frame of a bouncing digit is no linear function of the clip's mean.

Probes (`PROBES`): `linear` on `acts_pooled` (per-frame tasks: `acts_frame`); `attention` and
`attention-mlp` (appendix A.10) on the visual positions of `acts_token` (per-frame tasks: that frame's
tokens), on the clips that have them. The cache is read in `probe_inputs.py` (numpy and xarray only);
the probes are fitted, layers batched together, in `probes.py` (linear) and `attention_probes.py`.
Features are read and fitted a group of layers at a time, as many as fit `block_bytes` (as float32):
all of them for a cache that fits, one layer at a time for one larger than memory. A probe does not
depend on the grouping (the fits share no parameter; attention probes draw their initialisation for
every selected layer and keep their group's).

Splits are by clip, never by frame: for each seed the labelled clips are split train/val (stratified by
class for clip classification), and per-frame rows follow their clip. Grids of more than one value (L2
strengths, learning rates) are chosen per layer on an inner fold of the train clips, so `val_score` is
never used to choose anything. Scores: accuracy for classification, R² (averaged over outputs) for
regression. torch is imported only when `probe_layers` fits something.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from toto_lens.analysis import AnalysisError
from toto_lens.analysis.blocks import BLOCK_BYTES
from toto_lens.analysis.probe_inputs import (  # the registry is re-exported: users add tasks here
    CLASSIFICATION,
    PROBES,
    TASKS,
    CacheFeatures,
    ProbeTask,  # noqa: F401
    chance_accuracy,
    checkpoint_name,
    dataset_name,
    register_task,  # noqa: F401
    require,
    resolve_task,
    select_layers,
    split_rows,
    task_rows,
)
from toto_lens.progress import Progress, report

if TYPE_CHECKING:
    from toto_lens.analysis.attention_probes import AttentionConfig

L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)


def split_clips(
    n_clips: int, seed: int, val_fraction: float = 0.3, strata: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(train, val): disjoint sorted indices covering 0 … n_clips-1, the same for the same arguments.

    With `strata` (one label per clip) each stratum is split in the same proportion; a stratum of one
    clip goes to train.
    """
    return _split(np.random.default_rng(seed), n_clips, val_fraction, strata)


def _split(rng, n: int, val_fraction: float, strata) -> tuple[np.ndarray, np.ndarray]:
    strata = np.zeros(n, dtype=np.int64) if strata is None else np.asarray(strata)
    val = []
    for s in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == s))
        k = min(max(round(val_fraction * len(members)), 1), len(members) - 1)
        val.append(members[:k])
    is_val = np.zeros(n, dtype=bool)
    is_val[np.concatenate(val)] = True
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def probe_layers(
    ds: xr.Dataset,
    tasks: Sequence[str] = ("digit", "motion"),
    probes: Sequence[str] = ("linear",),
    seeds: Sequence[int] = (0, 1, 2),
    layers: Sequence[int] | None = None,
    *,
    val_fraction: float = 0.3,
    l2: Sequence[float] = L2_GRID,
    attention: AttentionConfig | None = None,
    progress: Progress | None = None,
    block_bytes: int = BLOCK_BYTES,
) -> xr.Dataset:
    """Probe every selected layer of the cache for every task, probe and seed.

    Returns a Dataset with dims (task, probe, layer, seed): `train_score`, `val_score` (accuracy or R²),
    `chosen` (the L2 strength or learning rate picked on the inner fold); `n_train`, `n_val` (task, probe,
    seed) in clips; coordinates `depth` (layer), `metric` and `chance` (task: majority-class val accuracy,
    0 for R²). A probe that does not apply to a task is NaN. `attention` is an
    `attention_probes.AttentionConfig`; `progress` (`toto_lens.progress`) hears of every (task, probe)
    fitted over all its layers and seeds, with its best seed-mean val score. `block_bytes` bounds the
    features (as float32) read and fitted at once: a group of layers, at least one.
    """
    tasks, probes = list(tasks), list(probes)
    unknown = [p for p in probes if p not in PROBES]
    if unknown or not probes:
        raise AnalysisError(f"unknown probe(s) {unknown or probes}; choose from {', '.join(PROBES)}")
    if not tasks:
        raise AnalysisError(f"name at least one task: {', '.join(TASKS)}, or a class label of the cache")
    specs = {t: resolve_task(ds, t) for t in tasks}  # registered, or a source's own label by name
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise AnalysisError(f"seeds must be distinct and at least one, got {seeds}")
    if not 0 < val_fraction < 1:
        raise AnalysisError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    layer_list = select_layers(ds, layers)
    for p in probes:  # a missing variable or label fails before any fitting starts
        for per_frame in {specs[t].per_frame for t in tasks}:
            require(ds, PROBES[p][per_frame])
    labelled = [task_rows(ds, specs[t]) for t in tasks]
    from toto_lens.analysis.attention_probes import AttentionConfig, fit_attention
    from toto_lens.analysis.probes import fit_linear

    cfg = attention if attention is not None else AttentionConfig()
    shape = (len(tasks), len(probes), len(layer_list), len(seeds))
    out = {k: np.full(shape, np.nan) for k in ("train_score", "val_score", "chosen")}
    counts = np.zeros((2, len(tasks), len(probes), len(seeds)), dtype=np.int64)  # train, val clips
    chance = np.zeros(len(tasks))
    features = CacheFeatures(ds, layer_list, block_bytes)
    pairs = [(t, p) for t in tasks for p in probes if specs[t].probes is None or p in specs[t].probes]
    for ti, (task, rows) in enumerate(zip((specs[t] for t in tasks), labelled, strict=True)):
        splits = []
        for seed in seeds:
            rng = np.random.default_rng(seed)  # the outer split is split_clips(…, seed, …)'s
            tr, va = _split(rng, len(rows.clips), val_fraction, rows.strata)
            inner = _split(rng, len(tr), val_fraction, None if rows.strata is None else rows.strata[tr])
            splits.append(
                (rows.clips[tr], rows.clips[va], rows.clips[tr][inner[0]], rows.clips[tr][inner[1]])
            )
            chance[ti] += chance_accuracy(rows, splits[-1][0], splits[-1][1]) / len(seeds)
        for pi, probe in enumerate(probes):
            if task.probes is not None and probe not in task.probes:
                continue
            t0 = time.perf_counter()
            var = PROBES[probe][task.per_frame]
            n_rows, row_of = features.rows(var, task.per_frame)
            per_seed = []
            for si, clips in enumerate(splits):
                split, y, counts[:, ti, pi, si] = split_rows(rows, row_of, clips, n_rows, task.name, probe)
                per_seed.append(split)
            groups = features.groups(var, task.per_frame)
            label = f"probe {task.name}/{probe}"
            if probe == "linear":  # every seed and layer of a group in one batch
                tick = ticker(progress, label, len(groups) * (2 if len(l2) > 1 else 1), "fits")
            else:
                per_fit = cfg.epochs * (2 if len(cfg.lrs) > 1 else 1)
                tick = ticker(progress, label, len(groups) * len(seeds) * per_fit, "epochs")
            for group in groups:  # read, fitted, released: one group's features in memory at a time
                x = features.load(var, task.per_frame, group)
                if probe == "linear":
                    fits = fit_linear(x, y, per_seed, classes=rows.classes, l2=tuple(l2), on_fit=tick)
                    fields = (fits.train, fits.val, fits.chosen)  # (seed, layer) each
                else:
                    each = [
                        fit_attention(
                            x, y, split, classes=rows.classes, cfg=cfg, mlp=probe == "attention-mlp",
                            seed=seed, on_epoch=tick, layers_of=(group.start, len(layer_list)),
                        )
                        for split, seed in zip(per_seed, seeds, strict=True)
                    ]  # fmt: skip
                    fields = tuple(
                        np.stack([getattr(f, k) for f in each]) for k in ("train", "val", "chosen")
                    )
                for key, value in zip(("train_score", "val_score", "chosen"), fields, strict=True):
                    out[key][ti, pi, group] = value.T  # (layer, seed)
                del x
            done = pairs.index((task.name, probe)) + 1
            best, took = float(np.max(out["val_score"][ti, pi].mean(1))), time.perf_counter() - t0
            report(progress, "probe", done, len(pairs), "curves", last=f"{task.name}/{probe}",
                   best=round(best, 3), seconds=round(took, 1))  # fmt: skip
    return _result(ds, specs, probes, layer_list, seeds, out, counts, chance, val_fraction, l2, cfg)


def ticker(progress: Progress | None, task: str, total: int, unit: str):
    """A callable that reports one more unit of `task` each call (the total grows if a fit needs more)."""
    done = 0
    report(progress, task, 0, total, unit)

    def tick() -> None:
        nonlocal done, total
        done += 1
        total = max(total, done)
        report(progress, task, done, total, unit)

    return tick


def _result(ds, specs, probes, layers, seeds, out, counts, chance, val_fraction, l2, cfg) -> xr.Dataset:
    tasks = list(specs)
    dims = ("task", "probe", "layer", "seed")
    if "depth" in ds.coords:
        depth = np.asarray(ds["depth"].sel(layer=layers).values, dtype=np.float64)
    else:  # an older or hand-made cache: the deepest cached layer stands for the last block
        depth = np.asarray(layers, dtype=np.float64) / max(1, max(int(v) for v in ds["layer"].values))
    metric = ["accuracy" if specs[t].kind == CLASSIFICATION else "r2" for t in tasks]
    return xr.Dataset(
        {
            "train_score": (dims, out["train_score"], {"long_name": "train score"}),
            "val_score": (dims, out["val_score"], {"long_name": "val score"}),
            "chosen": (dims, out["chosen"], {"long_name": "L2 strength (linear) or learning rate picked"}),
            "n_train": (("task", "probe", "seed"), counts[0], {"long_name": "train clips"}),
            "n_val": (("task", "probe", "seed"), counts[1], {"long_name": "val clips"}),
        },
        coords={
            "task": tasks,
            "probe": probes,
            "layer": np.asarray(layers, dtype=np.int64),
            "seed": np.asarray(seeds, dtype=np.int64),
            "depth": ("layer", depth),
            "metric": ("task", metric),
            "chance": ("task", np.where([m == "r2" for m in metric], 0.0, chance)),
        },
        attrs={
            "checkpoint": checkpoint_name(ds),
            "dataset": dataset_name(ds),
            "val_fraction": float(val_fraction),
            "l2_grid": [float(v) for v in l2],
            "attention_lrs": [float(v) for v in cfg.lrs],
            "attention_heads": int(cfg.heads),
            "attention_epochs": int(cfg.epochs),
        },
    )


def summarise(result: xr.Dataset) -> xr.Dataset:
    """Mean and sample std (ddof 1; NaN with one seed) over seeds of the train and val scores."""
    if not isinstance(result, xr.Dataset) or "val_score" not in result or "seed" not in result.dims:
        raise AnalysisError("expected a probe_layers result (a Dataset with val_score over seed)")
    out = {}
    with warnings.catch_warnings():  # an all-NaN (task, probe) is expected: probes that do not apply
        warnings.simplefilter("ignore", RuntimeWarning)
        for split in ("train", "val"):
            score = result[f"{split}_score"]
            out[f"{split}_mean"] = score.mean("seed")
            out[f"{split}_std"] = (
                score.std("seed", ddof=1) if result.sizes["seed"] > 1 else score.mean("seed") * np.nan
            )
    return xr.Dataset(out, attrs=result.attrs)


def best_layer(result: xr.Dataset, task: str, probe: str) -> int:
    """The layer with the highest seed-mean val score for (task, probe)."""
    for name, dim in ((task, "task"), (probe, "probe")):
        if name not in result[dim].values:
            raise AnalysisError(f"no {dim} {name!r} in this result; it holds {list(result[dim].values)}")
    mean = summarise(result)["val_mean"].sel(task=task, probe=probe)
    if not np.isfinite(mean.values).any():
        raise AnalysisError(f"no scores for task {task} with probe {probe} (it does not apply)")
    return int(mean["layer"].values[int(np.nanargmax(mean.values))])


# Names under which the package exports them (toto_lens.analysis).
summarise_probes = summarise
best_probe_layer = best_layer
