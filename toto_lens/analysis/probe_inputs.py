"""What the probes read from the activation cache: the task registry, targets, features, row splits.

Part of the probing analysis (`probing.py`, which documents the tasks and the protocol): here the cache
(docs/cache-schema.md) becomes arrays. A task's labelled rows are clips, or (clip, frame) pairs for
per-frame tasks; features are loaded once per variable for the selected layers, laid out (layer, row, …),
and a row map takes (clip, frame) to a feature row, or to -1 where the features were not extracted
(`acts_token` exists for the first `token_clips` clips only). numpy and xarray only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

from toto_lens.analysis import AnalysisError
from toto_lens.io import dict_attr

CLASSIFICATION, REGRESSION = "classification", "regression"
MIN_CLIPS = 10  # fewer labelled clips than this leave a val split of two or three clips: no curve
# probe -> feature variable for clip tasks, for per-frame tasks
PROBES = {
    "linear": ("acts_pooled", "acts_frame"),
    "attention": ("acts_token", "acts_token"),
    "attention-mlp": ("acts_token", "acts_token"),
}
_ACTS = {"acts_pooled": "pooled", "acts_frame": "frame", "acts_token": "token"}


@dataclass(frozen=True)
class ProbeTask:
    """A probing target: which coordinate it reads, how it becomes a (clip, …) array, what kind of fit.

    `target` maps the coordinate to an array whose first dim is clip: (clip,) class labels, (clip, k)
    regression targets, or (clip, frame) labels when `per_frame`. NaN, and negative class labels, mean
    "no label": those clips (or frames) are dropped. `probes` limits the probes that apply (None: all).
    """

    name: str
    kind: str
    coord: str
    target: Callable[[xr.DataArray], xr.DataArray] = lambda c: c
    per_frame: bool = False
    unlabelled: str = "no clip has a label"
    probes: tuple[str, ...] | None = None


TASKS: dict[str, ProbeTask] = {}


def register_task(task: ProbeTask) -> ProbeTask:
    """Add (or replace) a task of the registry; returns it."""
    if task.kind not in (CLASSIFICATION, REGRESSION):
        raise AnalysisError(f"task {task.name}: kind must be {CLASSIFICATION!r} or {REGRESSION!r}")
    TASKS[task.name] = task
    return task


def _object0_mean(coord: xr.DataArray) -> xr.DataArray:
    return coord.isel(object=0).mean("frame", skipna=False)  # (clip, axis); a NaN frame makes it NaN


register_task(ProbeTask("digit", CLASSIFICATION, "digit"))
register_task(
    ProbeTask("motion", CLASSIFICATION, "motion", unlabelled="image sequences (motion -1) have no motion")
)
register_task(ProbeTask("position", REGRESSION, "object_position", _object0_mean))
register_task(
    ProbeTask("velocity", REGRESSION, "object_velocity", _object0_mean, unlabelled="velocity is NaN")
)
register_task(ProbeTask("frame_digit", CLASSIFICATION, "frame_digit", per_frame=True))


def checkpoint_name(ds: xr.Dataset) -> str:
    """The checkpoint's name from the cache's attributes, for messages; else NAME."""
    return str(dict_attr(ds.attrs, "checkpoint").get("name", "NAME"))


def dataset_name(ds: xr.Dataset) -> str:
    """The cache's dataset name (e.g. moving-digits-val) from its attributes; "" when unknown."""
    return str(dict_attr(ds.attrs, "dataset").get("name", ""))


def require(ds: xr.Dataset, var: str) -> None:
    """Fail with the extract command that adds `var` to this cache when it lacks it: same data, the
    activations it has plus the missing ones, and --overwrite (a store of other settings is refused)."""
    if var in ds.data_vars:
        return
    had = dict_attr(ds.attrs, "request").get("acts", [])
    acts = [a for a in ("pooled", "frame", "token") if a in had or a == _ACTS[var]]
    data = dict_attr(ds.attrs, "dataset")
    where = f" --data {data['source']} --split {data['split']}" if {"source", "split"} <= data.keys() else ""
    raise AnalysisError(
        f"the cache has no {var}; extract it with "
        f"`toto-lens extract --ckpt {checkpoint_name(ds)}{where} --acts {','.join(acts)} --overwrite`"
    )


@dataclass
class TaskRows:
    """A task's labelled rows (clips, or (clip, frame) pairs) and their targets."""

    clip: np.ndarray  # (rows,) position of the row's clip in ds.clip
    frame: np.ndarray | None  # (rows,) frame of the row for per-frame tasks
    y: np.ndarray  # (rows,) class index, or (rows, k) regression target
    classes: int  # 0 for regression
    clips: np.ndarray  # sorted positions of the clips that have a label
    strata: np.ndarray | None  # a label per clip of `clips`, to stratify the split


def task_rows(ds: xr.Dataset, task: ProbeTask) -> TaskRows:
    """The labelled rows of `task` in the cache; class labels become indices 0 … classes-1."""
    if task.coord not in ds.variables:
        raise AnalysisError(
            f"task {task.name} needs the coordinate {task.coord!r}, which the cache does not have; "
            "re-extract from a source with labels (moving-digits has them all)"
        )
    values = np.asarray(task.target(ds[task.coord]).transpose("clip", ...).values, dtype=np.float64)
    if task.per_frame and values.ndim != 2:
        raise AnalysisError(f"task {task.name}: {task.coord} must be (clip, frame), got {values.shape}")
    flat = values if task.per_frame else values.reshape(len(values), -1)
    valid = np.isfinite(flat) if task.per_frame else np.isfinite(flat).all(1)
    if task.kind == CLASSIFICATION:
        valid &= np.nan_to_num(values, nan=-1) >= 0 if task.per_frame else flat[:, 0] >= 0
    if task.per_frame:
        clip, frame = np.nonzero(valid)
        raw = values[clip, frame]
    else:
        clip, frame = np.flatnonzero(valid), None
        raw = flat[clip] if task.kind == REGRESSION else flat[clip, 0]
    clips = np.unique(clip)
    if len(clips) == 0:
        raise AnalysisError(
            f"task {task.name}: {task.unlabelled} in this cache, so there is nothing to probe"
        )
    if len(clips) < MIN_CLIPS:
        raise AnalysisError(
            f"task {task.name}: only {len(clips)} clips have a label; probing needs {MIN_CLIPS}"
        )
    classes, strata = 0, None
    if task.kind == CLASSIFICATION:
        labels, y = np.unique(raw, return_inverse=True)
        if len(labels) < 2:
            raise AnalysisError(f"task {task.name}: every labelled clip has the same class ({labels[0]:g})")
        classes = len(labels)
        strata = None if task.per_frame else y
        raw = y
    return TaskRows(clip, frame, raw, classes, clips, strata)


def select_layers(ds: xr.Dataset, layers: Sequence[int] | None) -> list[int]:
    """`layers`, checked against the cache's, or all of the cache's when None."""
    if "layer" not in ds.coords:
        raise AnalysisError("the cache has no layer coordinate; is this an activation cache?")
    have = [int(v) for v in ds["layer"].values]
    if layers is None:
        return have
    missing = [int(v) for v in layers if int(v) not in have]
    if missing:
        raise AnalysisError(f"layer(s) {missing} are not in the cache, which holds layers {have}")
    return [int(v) for v in layers]


class CacheFeatures:
    """Feature arrays of the selected layers, each loaded once; rows map (clip[, frame]) to array rows."""

    def __init__(self, ds: xr.Dataset, layers: list[int]):
        self.ds, self.layers, self._cache = ds, layers, {}

    def get(self, var: str, per_frame: bool) -> tuple[np.ndarray, Callable]:
        key = (var, per_frame)
        if key not in self._cache:
            require(self.ds, var)
            self._cache[key] = self._tokens(per_frame) if var == "acts_token" else self._pooled(var)
        return self._cache[key]

    def _pooled(self, var: str):
        arr = self.ds[var].sel(layer=self.layers)
        if var == "acts_frame":  # (layer, clip·frame, d): row (c, f) is c·F + f
            arr = arr.transpose("layer", "clip", "frame", "feature")
            frames = arr.sizes["frame"]
            x = np.asarray(arr.values, dtype=np.float32).reshape(len(self.layers), -1, arr.sizes["feature"])
            return x, lambda clip, frame: clip * frames + frame
        x = np.asarray(arr.transpose("layer", "clip", "feature").values, dtype=np.float32)
        return x, lambda clip, frame: clip

    def _tokens(self, per_frame: bool):
        ds = self.ds
        if "pos_frame" not in ds.coords:
            raise AnalysisError("the cache has no pos_frame coordinate on position; re-extract it")
        pos_frame = np.asarray(ds["pos_frame"].values)
        visual = np.flatnonzero(pos_frame >= 0)
        visual = visual[np.argsort(pos_frame[visual], kind="stable")]  # frame-major order
        acts = ds["acts_token"].sel(layer=self.layers).transpose("layer", "clip", "position", "feature")
        # Unwritten clips read NaN whole (only the first token_clips are extracted): one token tells.
        probe = np.asarray(acts.isel(layer=0, position=int(visual[0])).values)
        have = np.flatnonzero(np.isfinite(probe).all(-1))
        # Contiguous: the probes copy batches of rows out of it, 20× slower from xarray's strided result.
        x = np.ascontiguousarray(acts.isel(clip=have, position=visual).values)  # (layer, clip, token, d)
        finite = np.isfinite(x).all((0, 2, 3))
        if not finite.all():
            have, x = have[finite], np.ascontiguousarray(x[:, finite])
        index = np.full(ds.sizes["clip"], -1)
        index[have] = np.arange(len(have))
        if not per_frame:
            return x, lambda clip, frame: index[clip]
        frames = int(pos_frame.max()) + 1
        counts = np.bincount(pos_frame[visual], minlength=frames)
        if len(set(counts.tolist())) != 1:
            raise AnalysisError(f"frames hold different numbers of tokens ({sorted(set(counts.tolist()))})")
        # Tokens are frame-major, so (layer, clip, frame·T, d) → (layer, clip·frame, T, d) is a reshape.
        x = x.reshape(x.shape[0], -1, counts[0], x.shape[3])
        return x, lambda clip, frame: np.where(index[clip] >= 0, index[clip] * frames + frame, -1)


def chance_accuracy(rows: TaskRows, train_clips: np.ndarray, val_clips: np.ndarray) -> float:
    """Val accuracy of always answering the train split's most frequent class (0 for regression)."""
    if not rows.classes:
        return 0.0
    majority = np.bincount(rows.y[np.isin(rows.clip, train_clips)], minlength=rows.classes).argmax()
    return float(np.mean(rows.y[np.isin(rows.clip, val_clips)] == majority))


def split_rows(rows: TaskRows, row_of: Callable, clips, n_rows: int, task: str, probe: str):
    """(Rows in feature-array indices, targets aligned with the feature rows, (train, val) clip counts).

    Rows whose features do not exist (acts_token of clips past token_clips) are left out of every split.
    """
    from toto_lens.analysis.probes import Rows

    mapped = row_of(rows.clip, rows.frame if rows.frame is not None else 0)
    have = mapped >= 0
    split = Rows(*(mapped[have & np.isin(rows.clip, c)] for c in clips))
    n_train, n_val = (len(np.intersect1d(rows.clip[have], c)) for c in clips[:2])
    if n_train + n_val < MIN_CLIPS or n_val == 0 or len(split.inner_val) == 0:
        raise AnalysisError(
            f"only {n_train + n_val} labelled clips for task {task} have acts_token (the extractor writes it "
            f"for the first token_clips clips); the {probe} probe needs {MIN_CLIPS}: re-extract with more"
        )
    y = np.zeros((n_rows,) + rows.y.shape[1:], rows.y.dtype)
    y[mapped[have]] = rows.y[have]
    return split, y, (n_train, n_val)
