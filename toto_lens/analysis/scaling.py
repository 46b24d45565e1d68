"""Learning-rate transfer across widths (μP, appendix Fig. 11) and loss against training compute (Fig. 14).

Follows the Toto appendix A.8 and PROTOCOLS.md ("μP for width transfer"): under μP one learning rate is
best for every width (the paper finds 2^-7 for widths 64 … 1536), while under the standard
parametrization the best learning rate usually moves down as the width grows, which is what μP removes.

* `lr_transfer`: a table of validation losses over (parametrization, width, lr), NaN where a run
  diverged, in; the best learning rate of each width and how far apart the widths' best rates lie, in
  octaves (log2) and in steps of the learning-rate grid, out. "One best learning rate for every width"
  reads as `spread_steps ≤ 1` (neighbouring grid points are as close as a sweep can tell apart).
* `power_law`: loss = a · C^(−α) fitted by least squares in log–log space (Kaplan et al. 2020 fit L(C)
  on the compute-efficient frontier; no irreducible-loss term, which a handful of small runs cannot pin).
* `frontier`: the evaluations no cheaper evaluation beats, the points that fit is made on.

Pure numpy and xarray: the rows come from whoever trained the runs (`toto_lens.studies.scaling`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from toto_lens.analysis import AnalysisError

PARAMETRIZATIONS = ("mup", "standard")
# Widths whose best learning rates lie at most this many grid points apart share one best rate.
TRANSFER_STEPS = 1


def lr_transfer(table: xr.Dataset) -> xr.Dataset:
    """The best learning rate per (parametrization, width) and its spread across widths.

    `table` has dims (parametrization, width, lr), or (width, lr) for one parametrization, and a variable
    `val_loss` (NaN: the run diverged or is missing). Returns the table, lr sorted ascending, with:

    * `best_lr` (parametrization, width): argmin over lr of val_loss, NaN ignored; NaN where every run of
      that width diverged. `best_lr_log2` is its log2, `best_lr_index` its place in the lr grid (−1: none),
      `best_val_loss` the loss there.
    * `best_lr_spread` (parametrization): max − min of best_lr_log2 over the widths that have one, in
      octaves; `spread_steps` the same in grid points (how many lr values apart the extremes are);
      `best_lr_shift_steps` the best rate's index at the widest width minus at the narrowest (negative:
      it moves down with width); `transfers`: spread_steps ≤ 1. NaN (transfers False) with no best rate.
    """
    if not isinstance(table, xr.Dataset) or "val_loss" not in table:
        raise AnalysisError("lr_transfer needs an xarray.Dataset with a val_loss variable over (width, lr)")
    if "parametrization" not in table.dims:
        table = table.expand_dims(parametrization=["mup"])
    dims = ("parametrization", "width", "lr")
    if set(table["val_loss"].dims) != set(dims):
        raise AnalysisError(f"val_loss must have dims {dims}, got {table['val_loss'].dims}")
    lrs = np.asarray(table["lr"].values, dtype=float)
    if lrs.size == 0 or not (lrs > 0).all() or len(set(lrs)) != lrs.size:
        raise AnalysisError(f"the lr coordinate needs distinct positive values, got {lrs.tolist()}")
    widths = np.asarray(table["width"].values)
    if widths.size == 0:
        raise AnalysisError("the table has no widths")
    out = table.sortby("lr").sortby("width").transpose(*dims, ...)
    lrs = np.asarray(out["lr"].values, dtype=float)
    loss = np.asarray(out["val_loss"].values, dtype=float)
    finite = np.isfinite(loss)
    index = np.where(finite.any(-1), np.argmin(np.where(finite, loss, np.inf), axis=-1), -1)
    has = index >= 0
    best_lr = np.where(has, lrs[np.maximum(index, 0)], np.nan)
    best_loss = np.where(has, np.take_along_axis(loss, np.maximum(index, 0)[..., None], -1)[..., 0], np.nan)
    pw = ("parametrization", "width")
    out["best_lr"] = (pw, best_lr, {"long_name": "learning rate of the lowest val_loss"})
    out["best_lr_log2"] = (pw, np.log2(best_lr), {"units": "octaves"})
    out["best_lr_index"] = (
        pw,
        index.astype(np.int64),
        {"long_name": "index in the sorted lr grid, -1: none"},
    )
    out["best_val_loss"] = (pw, best_loss)
    spread, steps, shift = [], [], []
    for p in range(loss.shape[0]):
        idx = index[p][has[p]]
        if idx.size == 0:
            spread.append(np.nan), steps.append(np.nan), shift.append(np.nan)
            continue
        logs = np.log2(lrs[idx])
        spread.append(float(logs.max() - logs.min()))
        steps.append(float(idx.max() - idx.min()))
        shift.append(float(idx[-1] - idx[0]))
    out["best_lr_spread"] = ("parametrization", np.array(spread), {"units": "octaves"})
    out["spread_steps"] = ("parametrization", np.array(steps), {"units": "lr grid points"})
    out["best_lr_shift_steps"] = ("parametrization", np.array(shift), {"units": "lr grid points"})
    out["transfers"] = ("parametrization", np.array([s <= TRANSFER_STEPS for s in steps]))
    out.attrs["transfer_steps"] = TRANSFER_STEPS
    out.attrs["lr_grid_log2_step"] = float(np.median(np.diff(np.log2(lrs)))) if lrs.size > 1 else float("nan")
    return out


@dataclass(frozen=True)
class PowerLaw:
    """loss = a · C^(−alpha), fitted on `n` points; r2 is the fit's R² in log–log space."""

    a: float
    alpha: float
    r2: float
    n: int

    def __call__(self, compute: np.ndarray | float) -> np.ndarray:
        return self.a * np.asarray(compute, dtype=float) ** (-self.alpha)

    def formula(self) -> str:
        return f"L = {self.a:.3g}·C^−{self.alpha:.3g} (r² = {self.r2:.3f}, {self.n} points)"


def power_law(compute: np.ndarray | list[float], loss: np.ndarray | list[float]) -> PowerLaw:
    """Least-squares fit of log loss = log a − alpha · log compute; refuses fewer than 2 points,
    non-positive or non-finite values, and points that all share one compute."""
    c, y = np.asarray(compute, dtype=float).ravel(), np.asarray(loss, dtype=float).ravel()
    if c.shape != y.shape:
        raise AnalysisError(f"power_law needs as many losses as computes, got {c.size} and {y.size}")
    if c.size < 2:
        raise AnalysisError(f"power_law needs at least 2 points (compute, loss), got {c.size}")
    if not (np.isfinite(c).all() and np.isfinite(y).all() and (c > 0).all() and (y > 0).all()):
        raise AnalysisError("power_law needs positive, finite compute and loss (it fits in log–log space)")
    x, t = np.log(c), np.log(y)
    if np.ptp(x) == 0:
        raise AnalysisError("power_law needs at least 2 different compute values; all points share one")
    slope, intercept = np.polyfit(x, t, 1)
    residual = t - (intercept + slope * x)
    total = float(((t - t.mean()) ** 2).sum())
    r2 = 1.0 - float((residual**2).sum()) / total if total > 0 else 1.0
    return PowerLaw(a=float(np.exp(intercept)), alpha=float(-slope), r2=r2, n=int(c.size))


def frontier(compute: np.ndarray | list[float], loss: np.ndarray | list[float]) -> np.ndarray:
    """Indices of the compute-efficient frontier, by increasing compute: the points whose loss is lower
    than that of every point of less compute (of points sharing one compute, the lowest, the first on a
    tie). Points with a NaN are never on it."""
    c, y = np.asarray(compute, dtype=float).ravel(), np.asarray(loss, dtype=float).ravel()
    if c.shape != y.shape:
        raise AnalysisError(f"frontier needs as many losses as computes, got {c.size} and {y.size}")
    keep = np.flatnonzero(np.isfinite(c) & np.isfinite(y))
    order = keep[np.lexsort((y[keep], c[keep]))]  # by compute, then loss (stable: first on a tie)
    chosen, best = [], np.inf
    for i in order:
        if y[i] < best:
            chosen.append(i)
            best = y[i]
    return np.asarray(chosen, dtype=np.int64)
