"""Where a prediction's evidence sits: attribution over earlier tokens, summed by frame and by place.

Input: one attribution vector over the clip's positions per target token (from integrated gradients,
`toto_lens.run.attribution`): how much each earlier token moved log p(target | earlier tokens) away from
its value on the baseline. Here it is grouped by where each earlier token sits relative to the target:
its frame offset Δframe = frame − target frame (0 the target's own frame, −1 the previous one, …), and
within a frame its (Δrow, Δcol) offset. Special tokens (the start token) form their own bucket.

Mass: a position's share is |a| / Σ|a| over the positions before the target (the absolute share, which
sums to 1 per target); `*_signed` use a / Σ|a| (the same denominator, so they lie in [−1, 1] and say
whether a bucket pushed the prediction up or down on balance).

Every score has its control beside it:

* `uniform`: the share a bucket would get if the mass were spread evenly over the earlier positions
  (its count / p): a bucket above it is favoured, not just large.
* the previous frame's same place (Δrow = Δcol = 0) against the mean share of one of the previous
  frame's other places (`prev_other_abs`): "the model looks at the same place" needs this contrast, as
  the previous frame as a whole being heavy is no evidence for it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from toto_lens.analysis import AnalysisError


def attribution_summary(
    attribution: Any,
    target_position: Any,
    pos_frame: Any,
    row: Any,
    col: Any,
    *,
    delta: Any = None,
    f_input: Any = None,
    f_baseline: Any = None,
) -> xr.Dataset:
    """Shares of attribution mass per Δframe and per (Δframe, Δrow, Δcol), with controls, per target.

    attribution: (target, position) attribution of each position to its target's log-probability; the
    entries at positions ≥ the target's position are ignored (a causal model gives them 0).
    target_position: (target,) each target's position p (a visual token with at least one earlier token);
    pos_frame, row, col: (position,) the layout's coordinates, −1 for special tokens;
    delta, f_input, f_baseline: (target,) the completeness error Σ a − (F(x) − F(x')) and F's values.
    """
    a = np.asarray(attribution, dtype=np.float64)
    p = np.asarray(target_position, dtype=np.int64)
    frame, rows, cols = (np.asarray(v, dtype=np.int64) for v in (pos_frame, row, col))
    if (
        a.ndim != 2
        or p.shape != (a.shape[0],)
        or not frame.shape == rows.shape == cols.shape == (a.shape[1],)
    ):
        raise AnalysisError(
            f"expected attribution (target, position), target_position (target,) and coordinates "
            f"(position,): got {a.shape}, {p.shape}, {frame.shape}, {rows.shape}, {cols.shape}"
        )
    if a.shape[0] == 0:
        raise AnalysisError("no targets to summarise")
    if (p < 1).any() or (p >= a.shape[1]).any() or (frame[p] < 0).any():
        raise AnalysisError(
            f"each target must be a visual token after position 0, got positions {p.tolist()}"
        )
    n_frames, n_rows, n_cols = int(frame.max()) + 1, int(rows.max()) + 1, int(cols.max()) + 1
    dframes = -np.arange(n_frames)  # 0, −1, …
    drows, dcols = np.arange(-(n_rows - 1), n_rows), np.arange(-(n_cols - 1), n_cols)
    n = len(p)
    share_abs, share_signed, uniform = (np.zeros((n, n_frames)) for _ in range(3))
    start_abs, start_signed, start_uniform = np.zeros(n), np.zeros(n), np.zeros(n)
    same_abs, same_signed, other_abs = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    offset_sum = np.zeros((n_frames, len(drows), len(dcols)))
    offset_uniform = np.zeros_like(offset_sum)
    offset_count = np.zeros(offset_sum.shape, dtype=np.int64)
    total = np.zeros(n)
    for i, pi in enumerate(p):
        before = a[i, :pi]
        mass = np.abs(before).sum()
        total[i] = mass
        norm = mass if mass > 0 else np.nan  # no mass at all: every share is unknown, not 0
        fr, rr, cc = frame[:pi], rows[:pi], cols[:pi]
        visual = fr >= 0
        df = fr[visual] - frame[pi]  # ≤ 0
        shares, signed = np.abs(before) / norm, before / norm
        share_abs[i] = np.bincount(-df, weights=shares[visual], minlength=n_frames)
        share_signed[i] = np.bincount(-df, weights=signed[visual], minlength=n_frames)
        uniform[i] = np.bincount(-df, minlength=n_frames) / pi
        start_abs[i], start_signed[i] = shares[~visual].sum(), signed[~visual].sum()
        start_uniform[i] = (~visual).sum() / pi
        dr, dc = rr[visual] - rows[pi], cc[visual] - cols[pi]
        cell = (-df, dr + n_rows - 1, dc + n_cols - 1)
        np.add.at(offset_sum, cell, shares[visual])
        np.add.at(offset_count, cell, 1)
        np.add.at(offset_uniform, cell, 1.0 / pi)
        previous = df == -1
        if previous.any():
            here = previous & (dr == 0) & (dc == 0)
            same_abs[i], same_signed[i] = shares[visual][here].sum(), signed[visual][here].sum()
            other_abs[i] = shares[visual][previous & ~here].mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        offset_abs = offset_sum / offset_count
        offset_uniform = offset_uniform / offset_count
    ds = xr.Dataset(
        {
            "attribution": (("target", "position"), a),
            "share_abs": (("target", "dframe"), share_abs),
            "share_signed": (("target", "dframe"), share_signed),
            "uniform": (("target", "dframe"), uniform),
            "start_abs": ("target", start_abs),
            "start_signed": ("target", start_signed),
            "start_uniform": ("target", start_uniform),
            "same_place_abs": ("target", same_abs),
            "same_place_signed": ("target", same_signed),
            "same_place_uniform": ("target", np.where(np.isnan(same_abs), np.nan, 1.0 / p)),
            "prev_other_abs": ("target", other_abs),
            "mass": ("target", total),
            "offset_abs": (("dframe", "drow", "dcol"), offset_abs),
            "offset_uniform": (("dframe", "drow", "dcol"), offset_uniform),
            "offset_count": (("dframe", "drow", "dcol"), offset_count),
        },
        coords={
            "target": np.arange(n),
            "target_position": ("target", p),
            "target_frame": ("target", frame[p]),
            "target_row": ("target", rows[p]),
            "target_col": ("target", cols[p]),
            "position": np.arange(a.shape[1]),
            "pos_frame": ("position", frame),
            "row": ("position", rows),
            "col": ("position", cols),
            "dframe": dframes,
            "drow": drows,
            "dcol": dcols,
        },
    )
    if delta is not None:
        _completeness(ds, delta, f_input, f_baseline)
    ds["share_abs"].attrs["long_name"] = "|attribution| share: Σ|a| over the bucket / Σ|a| before the target"
    ds["share_signed"].attrs["long_name"] = "signed share: Σ a over the bucket / Σ|a| before the target"
    ds["uniform"].attrs["long_name"] = "control: the bucket's share of the earlier positions (count / p)"
    ds["prev_other_abs"].attrs["long_name"] = "control: mean |share| of one other place of the previous frame"
    ds["offset_abs"].attrs["long_name"] = "mean |share| of one token at (Δframe, Δrow, Δcol) over targets"
    ds.attrs["targets"] = n
    return ds


def _completeness(ds: xr.Dataset, delta: Any, f_input: Any, f_baseline: Any) -> None:
    """The completeness gap |Σ a − (F(x) − F(x'))| per target, absolute and relative to |F(x) − F(x')|."""
    delta = np.asarray(delta, dtype=np.float64)
    ds["delta"] = ("target", delta)
    ds["gap"] = ("target", np.abs(delta))
    if f_input is not None and f_baseline is not None:
        change = np.asarray(f_input, dtype=np.float64) - np.asarray(f_baseline, dtype=np.float64)
        ds["f_input"] = ("target", np.asarray(f_input, dtype=np.float64))
        ds["f_baseline"] = ("target", np.asarray(f_baseline, dtype=np.float64))
        with np.errstate(divide="ignore", invalid="ignore"):
            ds["gap_relative"] = ("target", np.abs(delta) / np.abs(change))
        ds["f_input"].attrs["long_name"] = "log p(target | earlier tokens)"
        ds["f_baseline"].attrs["long_name"] = "log p(target | baseline tokens)"
    ds["gap"].attrs["long_name"] = "completeness gap |Σ attribution − (F(input) − F(baseline))|"


def bucket_means(result: xr.Dataset) -> dict[str, dict[str, float]]:
    """Mean over targets of each bucket's |share|, signed share and uniform control: the same frame, the
    previous frame, its same place, one of its other places (mean per place), older frames, the start
    token. NaN where no target has such a bucket."""
    r = result

    def mean(x: Any) -> float:
        x = np.asarray(x, dtype=np.float64)
        return float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")

    def frames(name: str, keep: Any) -> float:
        if not bool(np.any(keep)):
            return float("nan")
        return mean(r[name].where(keep).sum("dframe", min_count=1))

    out = {}
    for label, keep in (("same frame", r["dframe"] == 0), ("previous frame", r["dframe"] == -1)):
        out[label] = {k: frames(v, keep) for k, v in (("abs", "share_abs"), ("signed", "share_signed"),
                                                      ("uniform", "uniform"))}  # fmt: skip
    one = r["same_place_uniform"].values  # 1 / p where the target has a previous frame
    out["previous frame, same place"] = {
        "abs": mean(r["same_place_abs"]), "signed": mean(r["same_place_signed"]), "uniform": mean(one)
    }  # fmt: skip
    out["previous frame, another place"] = {
        "abs": mean(r["prev_other_abs"]), "signed": float("nan"), "uniform": mean(one)
    }  # fmt: skip
    older = r["dframe"] <= -2
    out["older frames"] = {k: frames(v, older) for k, v in (("abs", "share_abs"), ("signed", "share_signed"),
                                                           ("uniform", "uniform"))}  # fmt: skip
    out["start token"] = {
        "abs": mean(r["start_abs"]), "signed": mean(r["start_signed"]), "uniform": mean(r["start_uniform"])
    }  # fmt: skip
    return out
