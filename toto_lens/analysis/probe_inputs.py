"""What the probes read from the activation cache: the task registry, targets, features, row splits.

Part of the probing analysis (`probing.py`, which documents the tasks and the protocol): here the cache
(docs/cache-schema.md) becomes arrays. A task's labelled rows are clips, or (clip, frame) pairs for
per-frame tasks; features are read a group of layers at a time, laid out (layer, row, …), and a row map
takes (clip, frame) to a feature row, or to -1 where the features were not extracted (`acts_token`
exists for the first `token_clips` clips only). A group holds as many of the selected layers as fit
`block_bytes` (as float32), at least one, so a store whose features are larger than memory is probed a
layer at a time; features that fit are one group, read once and kept for every task. numpy and xarray
only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

from toto_lens.analysis import AnalysisError
from toto_lens.analysis.blocks import BLOCK_BYTES, check_block_bytes, steps
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


def label_tasks(ds: xr.Dataset) -> list[str]:
    """The cache's own class labels that `resolve_task` probes by name (integer coordinates along clip,
    or clip and frame: `label`, `frame_label`, a labels.csv column), registered tasks and `kind` left out."""
    return [
        str(name) for name, c in ds.coords.items()
        if name not in TASKS and name != "kind" and c.dims in (("clip",), ("clip", "frame"))
        and np.issubdtype(c.dtype, np.integer) and name != "clip"
    ]  # fmt: skip


def resolve_task(ds: xr.Dataset, name: str) -> ProbeTask:
    """A registered task, or one of the cache's class labels (`label_tasks`) probed by its name: (clip,)
    labels per clip, (clip, frame) labels per frame; -1 means no label."""
    if name in TASKS:
        return TASKS[name]
    if name in label_tasks(ds):
        per_frame = ds[name].dims == ("clip", "frame")
        return ProbeTask(name, CLASSIFICATION, name, per_frame=per_frame, unlabelled=f"no clip has a {name}")
    own = label_tasks(ds)
    raise AnalysisError(
        f"unknown task {name!r}; choose from {', '.join(TASKS)}"
        + (f", or this cache's labels: {', '.join(own)}" if own else "")
    )


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
    """Features of the selected layers, read a group of layers at a time (`block_bytes` as float32).

    `rows` gives the number of feature rows and the map (clip, frame) → row without reading the
    features (for `acts_token`, the clips that have them: one token of the first layer, then whether
    every value of every selected layer is finite, a group at a time); `groups` the runs of layers
    (slices into `layers`) to fit together; `load` their features (layer, row, …). Features that fit in
    one group are read once and kept, for every task that asks for them again.
    """

    def __init__(self, ds: xr.Dataset, layers: list[int], block_bytes: int = BLOCK_BYTES):
        self.ds, self.layers, self.block_bytes = ds, layers, check_block_bytes(block_bytes)
        self._rows: dict = {}
        self._kept: dict = {}
        self._visual: np.ndarray | None = None  # acts_token: visual positions, clips that have tokens
        self._have: np.ndarray | None = None
        self._kept_tokens: np.ndarray | None = None
        self._frame_tokens = 0

    def get(self, var: str, per_frame: bool) -> tuple[np.ndarray, Callable]:
        """Features of every selected layer at once (layer, row, …) and the row map, kept for the next
        call: for callers that want them whole (the predictions explorer); probing reads groups."""
        return self.load(var, per_frame, slice(0, len(self.layers))), self.rows(var, per_frame)[1]

    def rows(self, var: str, per_frame: bool) -> tuple[int, Callable]:
        """(number of feature rows, row map (clip, frame) → row or -1)."""
        return self._layout(var, per_frame)[:2]

    def groups(self, var: str, per_frame: bool) -> list[slice]:
        """Runs of the selected layers whose features fit `block_bytes` together (at least one layer)."""
        return steps(len(self.layers), self._layout(var, per_frame)[2], self.block_bytes)

    def load(self, var: str, per_frame: bool, group: slice) -> np.ndarray:
        """Features (layer, row, feature) of the layers `group`; (layer, row, token, feature) for acts_token."""
        key = (var, per_frame)
        self._layout(var, per_frame)  # the variable is there; for acts_token, the clips that have it
        whole = group == slice(0, len(self.layers))
        if whole and key in self._kept:
            return self._kept[key]
        x = self._tokens(group, per_frame) if var == "acts_token" else self._pooled(var, group)
        if whole:
            self._kept[key] = x
        return x

    def _layout(self, var: str, per_frame: bool):
        key = (var, per_frame)
        if key not in self._rows:
            require(self.ds, var)
            self._rows[key] = self._token_rows(per_frame) if var == "acts_token" else self._pooled_rows(var)
        return self._rows[key]

    def _pooled_rows(self, var: str):
        sizes = self.ds[var].sizes
        if var == "acts_frame":  # row (c, f) is c·F + f
            frames = sizes["frame"]
            n = sizes["clip"] * frames
            return n, (lambda clip, frame: clip * frames + frame), n * sizes["feature"] * 4
        return sizes["clip"], (lambda clip, frame: clip), sizes["clip"] * sizes["feature"] * 4

    def _pooled(self, var: str, group: slice) -> np.ndarray:
        arr = self.ds[var].sel(layer=self.layers[group])
        if var == "acts_frame":  # (layer, clip·frame, d)
            arr = arr.transpose("layer", "clip", "frame", "feature")
            x = np.asarray(arr.values, dtype=np.float32)
            return x.reshape(x.shape[0], -1, arr.sizes["feature"])
        return np.asarray(arr.transpose("layer", "clip", "feature").values, dtype=np.float32)

    def _token_acts(self) -> xr.DataArray:
        return self.ds["acts_token"].sel(layer=self.layers).transpose("layer", "clip", "position", "feature")

    def _token_clips(self) -> None:
        """The visual positions in frame-major order, and the clips whose tokens were extracted and are
        finite in every selected layer (`self._visual`, `self._have`); once for both kinds of task."""
        if self._visual is not None:
            return
        if "pos_frame" not in self.ds.coords:
            raise AnalysisError("the cache has no pos_frame coordinate on position; re-extract it")
        pos_frame = np.asarray(self.ds["pos_frame"].values)
        visual = np.flatnonzero(pos_frame >= 0)
        self._visual = visual[np.argsort(pos_frame[visual], kind="stable")]  # frame-major order
        acts = self._token_acts()
        # Unwritten clips read NaN whole (only the first token_clips are extracted): one token tells.
        probe = np.asarray(acts.isel(layer=0, position=int(self._visual[0])).values)
        self._have = np.flatnonzero(np.isfinite(probe).all(-1))
        per_layer = len(self._have) * len(self._visual) * acts.sizes["feature"] * 4
        finite = np.ones(len(self._have), dtype=bool)
        for group in steps(len(self.layers), per_layer, self.block_bytes):
            x = self._token_block(group)
            finite &= np.isfinite(x).all((0, 2, 3))
            if group == slice(0, len(self.layers)):  # one group: kept, for load() not to read it again
                self._kept_tokens = x
        if not finite.all():
            self._have = self._have[finite]
            if self._kept_tokens is not None:
                self._kept_tokens = np.ascontiguousarray(self._kept_tokens[:, finite])

    def _token_rows(self, per_frame: bool):
        self._token_clips()
        have, visual = self._have, self._visual
        index = np.full(self.ds.sizes["clip"], -1)
        index[have] = np.arange(len(have))
        per_layer = len(have) * len(visual) * self.ds["acts_token"].sizes["feature"] * 4
        if not per_frame:
            return len(have), (lambda clip, frame: index[clip]), per_layer
        pos_frame = np.asarray(self.ds["pos_frame"].values)
        frames = int(pos_frame.max()) + 1
        counts = np.bincount(pos_frame[visual], minlength=frames)
        if len(set(counts.tolist())) != 1:
            raise AnalysisError(f"frames hold different numbers of tokens ({sorted(set(counts.tolist()))})")
        self._frame_tokens = int(counts[0])
        return (
            len(have) * frames,
            lambda clip, frame: np.where(index[clip] >= 0, index[clip] * frames + frame, -1),
            per_layer,
        )

    def _token_block(self, group: slice) -> np.ndarray:
        # Contiguous: the probes copy batches of rows out of it, 20× slower from xarray's strided result.
        acts = self._token_acts().isel(layer=group, clip=self._have, position=self._visual)
        return np.ascontiguousarray(acts.values)  # (layer, clip, token, d)

    def _tokens(self, group: slice, per_frame: bool) -> np.ndarray:
        whole = group == slice(0, len(self.layers))
        x = self._kept_tokens if whole and self._kept_tokens is not None else self._token_block(group)
        if not per_frame:
            return x
        # Tokens are frame-major, so (layer, clip, frame·T, d) → (layer, clip·frame, T, d) is a reshape.
        return x.reshape(x.shape[0], -1, self._frame_tokens, x.shape[3])


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
