"""Per-clip predictions of one layer's linear probe, for the probing explorer's confusion matrix.

`analysis.probing.probe_layers` keeps scores only. Here one (task, layer, seed) is fitted again with the
same pieces (`analysis.probes`: train-statistics standardisation, L2 chosen on the inner fold, logistic
regression by the batched L-BFGS or ridge in closed form) on the same split (`probe_layers` draws the
outer and then the inner split from one generator seeded with the seed), and the val rows' predictions
are kept. Its val score is therefore the result's `val_score` at that (task, "linear", layer, seed), up to
the rounding of fitting one problem where `probe_layers` batches many.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from toto_lens.analysis.probe_inputs import (
    CLASSIFICATION,
    PROBES,
    CacheFeatures,
    resolve_task,
    split_rows,
    task_rows,
)
from toto_lens.analysis.probing import L2_GRID


@dataclass(frozen=True)
class ProbePredictions:
    """The val rows of one fitted linear probe: targets, predictions and where each row comes from."""

    task: str
    layer: int
    seed: int
    kind: str  # "classification" or "regression"
    y_true: np.ndarray  # (rows,) class indices, or (rows, k) targets
    y_pred: np.ndarray  # the same shape
    labels: list[str]  # class names by index (classification); output names (regression)
    clip: np.ndarray  # (rows,) the row's clip (the cache's `clip` coordinate)
    frame: np.ndarray | None  # (rows,) the row's frame for per-frame tasks
    l2: float  # the L2 strength chosen on the inner fold
    score: float  # val accuracy or R² (mean over outputs), as `probe_layers` scores it
    n_train: int  # train clips
    n_val: int  # val clips

    def confusion(self) -> np.ndarray:
        """(true class, predicted class) counts of the val rows."""
        k = len(self.labels)
        counts = np.zeros((k, k), dtype=np.int64)
        np.add.at(counts, (self.y_true, self.y_pred), 1)
        return counts


class ProbeFitter:
    """Fits linear probes of a cache one (task, layer, seed) at a time, each once: a repeat is a lookup.

    `layers` are the layers whose features are loaded (once per feature variable, on first use).
    """

    def __init__(
        self, ds: Any, layers: list[int], *, val_fraction: float = 0.3, l2: tuple[float, ...] = L2_GRID
    ):
        self.ds, self.layers = ds, [int(v) for v in layers]
        self.val_fraction, self.l2 = float(val_fraction), tuple(float(v) for v in l2)
        self.features = CacheFeatures(ds, self.layers)
        self._rows: dict[str, Any] = {}
        self._fits: dict[tuple[str, int, int], ProbePredictions] = {}
        self._pending: dict[tuple[str, int, int], Future] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def rows(self, task: str):
        if task not in self._rows:
            self._rows[task] = task_rows(self.ds, resolve_task(self.ds, task))
        return self._rows[task]

    def predict(self, task: str, layer: int, seed: int = 0) -> ProbePredictions:
        """The fit of (task, layer, seed): kept, prefetched (waited for if it is running), or fitted now."""
        key = (task, int(layer), int(seed))
        with self._lock:
            if key in self._fits:
                return self._fits[key]
            pending = self._pending.pop(key, None)
        if pending is not None and not pending.cancel():  # running already: its result is on the way
            return pending.result()
        return self._keep(key)

    def prefetch(self, task: str, layers: list[int], seed: int = 0) -> None:
        """Fit these layers in a background thread, in this order, so that moving to them costs nothing.

        The task's rows and features are read here first: the thread only fits (numpy and torch release
        the interpreter in their kernels, so the notebook stays responsive meanwhile).
        """
        spec = resolve_task(self.ds, task)
        self.rows(task)
        self.features.get(PROBES["linear"][spec.per_frame], spec.per_frame)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="probe-fits")
        with self._lock:
            for layer in layers:
                key = (task, int(layer), int(seed))
                if key not in self._fits and key not in self._pending:
                    self._pending[key] = self._pool.submit(self._keep, key)

    def close(self) -> None:
        """Drop the prefetches not started; the one running finishes."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        with self._lock:
            self._pending.clear()

    def _keep(self, key: tuple[str, int, int]) -> ProbePredictions:
        out = self._fit(*key)
        with self._lock:
            self._fits[key] = out
            self._pending.pop(key, None)
        return out

    def _fit(self, task: str, layer: int, seed: int) -> ProbePredictions:
        from toto_lens.analysis.probing import _split

        spec, rows = resolve_task(self.ds, task), self.rows(task)
        rng = np.random.default_rng(seed)  # the outer split, then the inner one, as probe_layers draws them
        tr, va = _split(rng, len(rows.clips), self.val_fraction, rows.strata)
        inner = _split(rng, len(tr), self.val_fraction, None if rows.strata is None else rows.strata[tr])
        clips = (rows.clips[tr], rows.clips[va], rows.clips[tr][inner[0]], rows.clips[tr][inner[1]])
        x, row_of = self.features.get(PROBES["linear"][spec.per_frame], spec.per_frame)
        split, y, (n_train, n_val) = split_rows(rows, row_of, clips, x.shape[1], task, "linear")
        x = x[self.layers.index(int(layer))][None]  # (1, rows, d)
        pred, lam, score = fit_one(x, y, split, classes=rows.classes, l2=self.l2)
        # Rows of the feature array back to (clip, frame): invert the map the cache's layout gives.
        frame = rows.frame if rows.frame is not None else np.zeros(len(rows.clip), dtype=np.int64)
        feature_row = row_of(rows.clip, frame)
        order = {int(r): i for i, r in enumerate(feature_row)}
        where = np.array([order[int(r)] for r in split.val])
        clip_ids = np.asarray(self.ds["clip"].values)[rows.clip[where]]
        return ProbePredictions(
            task=task, layer=int(layer), seed=int(seed), kind=spec.kind,
            y_true=y[split.val], y_pred=pred, labels=_labels(self.ds, spec, rows, y),
            clip=clip_ids, frame=None if rows.frame is None else rows.frame[where],
            l2=lam, score=score, n_train=int(n_train), n_val=int(n_val),
        )  # fmt: skip


def fit_one(x: np.ndarray, y: np.ndarray, split: Any, *, classes: int, l2: tuple[float, ...]):
    """(val predictions, chosen λ, val score) of one layer's linear probe; x (1, rows, d), `split` a `Rows`.

    The steps of `analysis.probes._fit_linear` for one problem, keeping the weights to predict with.
    """
    import torch

    from toto_lens.analysis.probes import _apply, _logistic, _ridge, _standardise, pick, scores

    z = _standardise(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(split.train))
    if classes:
        yt = torch.as_tensor(y, dtype=torch.int64)
    else:
        yt = torch.as_tensor(y, dtype=torch.float64).reshape(len(y), -1)
        z = z.double()

    def fit(rows: np.ndarray, lam: np.ndarray) -> torch.Tensor:
        zz, yy, lam_t = z[:, rows], yt[rows][None], torch.as_tensor(lam)[None]  # one problem
        if classes:
            return torch.from_numpy(_logistic(zz.numpy(), yy.numpy(), lam_t.numpy(), classes, 1e-4, 100))
        return _ridge(zz, yy, lam_t)

    grid = np.asarray(l2, dtype=np.float64)
    chosen = 0
    if len(grid) > 1:
        w = fit(split.inner_train, grid)
        inner = scores(_apply(z[:, split.inner_val], w.to(z.dtype)), yt[split.inner_val][None], classes)
        chosen = int(pick(inner.T.numpy(), grid)[0])
    w = fit(split.train, grid[[chosen]]).to(z.dtype)
    out = _apply(z[:, split.val], w)  # (1, 1, rows, out)
    score = float(scores(out, yt[split.val][None], classes)[0, 0])
    out = out[0, 0]
    pred = out.argmax(-1).numpy() if classes else out.numpy().astype(np.float64)
    return pred, float(grid[chosen]), score


def _labels(ds: Any, spec: Any, rows: Any, y: np.ndarray) -> list[str]:
    """Class names by class index (task_rows numbers the classes present in sorted order), from the
    label's `flag_values` / `flag_meanings`; output names for a regression."""
    if spec.kind != CLASSIFICATION:
        k = 1 if y.ndim == 1 else y.shape[1]
        dims = [d for d in ds[spec.coord].dims if d not in ("clip", "frame", "object")]
        names = [f"{dims[-1]} {v}" for v in ds[dims[-1]].values] if dims and ds.sizes[dims[-1]] == k else []
        return names if len(names) == k else [str(i) for i in range(k)]
    values = np.asarray(spec.target(ds[spec.coord]).values, dtype=np.float64)
    present = np.unique(values[np.isfinite(values) & (values >= 0)])
    attrs = ds[spec.coord].attrs
    flags, meanings = attrs.get("flag_values"), str(attrs.get("flag_meanings", "")).split()
    names = dict(zip((float(v) for v in flags), meanings, strict=False)) if flags is not None else {}
    if len(present) != rows.classes:  # cannot happen for task_rows' own classes; keep indices then
        return [str(i) for i in range(rows.classes)]
    return [names.get(float(v), f"{v:g}") for v in present]


def linear_probe_predictions(
    ds: Any, task: str, layer: int, seed: int = 0, *, val_fraction: float = 0.3, l2=L2_GRID
) -> ProbePredictions:
    """Val predictions of the linear probe of `task` on `layer` of the cache `ds`, split by `seed` as
    `probe_layers(ds, tasks=[task], seeds=[seed], val_fraction=val_fraction, l2=l2)` splits it."""
    return ProbeFitter(ds, [layer], val_fraction=val_fraction, l2=tuple(l2)).predict(task, layer, seed)
