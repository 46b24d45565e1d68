"""Where attention goes in space and time: per-head distances and masses, frame-to-frame mass, a query's map.

Pure functions of attention patterns (..., head, qpos, kpos) laid out by a `Layout` (position 0 the start
token, then the frames in raster order, then the end token) and of the cache's `attn_frame`. Like
`toto_lens.analysis.induction` they take numpy arrays, xarray DataArrays, or torch tensors as they are (on
their device, no copy of the whole pattern), so a runner can reduce each layer's pattern inside its hook.

The start token soaks up much of the attention of many heads (an "attention sink", Xiao et al. 2023), so
the masses here are raw weights (sink + own frame + earlier frames = 1 for every visual query of a causal
pattern), while the distances are over the visual keys only, renormalised (see `attention_distances`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from toto_lens.analysis import AnalysisError
from toto_lens.analysis.induction import _pattern
from toto_lens.data.layout import Layout

LEAD_DIMS = ("clip", "layer", "head")  # names of a plain array's leading axes, read from the right
DISTANCES = ("frame_distance", "row_distance", "col_distance", "position_distance")
MASSES = ("sink_mass", "own_frame_mass", "previous_frame_mass", "earlier_frames_mass")
_LONG = {
    "frame_distance": ("mean |Δframe| over visual keys", "frames"),
    "row_distance": ("mean |Δrow| over visual keys", "rows"),
    "col_distance": ("mean |Δcol| over visual keys", "cols"),
    "position_distance": ("mean Δposition over visual keys", "positions"),
    "sink_mass": ("weight on the start token", ""),
    "own_frame_mass": ("weight on the query's own frame", ""),
    "previous_frame_mass": ("weight on the frame before the query's", ""),
    "earlier_frames_mass": ("weight on every frame before the query's", ""),
    "older_frames_mass": ("weight on frames two or more before the query's", ""),
    "temporality": ("earlier frames / (own + earlier frames)", ""),
    "temporal_rank": ("rank by temporality, 0 = the most temporal head", ""),
    "frame_mass": ("attention mass from query frame to key frame, mean over the query frame's tokens", ""),
}


def _split(pattern: Any, dims: Sequence[str] | None) -> tuple[Any, list[str], dict[str, Any]]:
    """(array or tensor, names of the axes before (query, key), their coordinates)."""
    if isinstance(pattern, xr.DataArray):
        lead = list(pattern.dims[:-2])
        coords = {d: pattern[d].values for d in lead if d in pattern.coords}
        return _pattern(pattern.values), lead, coords
    arr = _pattern(pattern)
    n = arr.ndim - 2
    if dims is None:
        if n > len(LEAD_DIMS):
            raise AnalysisError(f"a pattern with {n} leading axes needs dims=… naming them")
        dims = LEAD_DIMS[len(LEAD_DIMS) - n :]
    if len(dims) != n:
        raise AnalysisError(
            f"dims {tuple(dims)} name {len(dims)} axes; the pattern has {n} before (query, key)"
        )
    return arr, list(dims), {}


def _like(arr: Any, values: np.ndarray) -> Any:
    """`values` as the pattern's kind: a tensor on its device, or the numpy array itself."""
    return values if isinstance(arr, np.ndarray) else arr.new_tensor(values, dtype=arr.dtype)


def _numpy(x: Any) -> np.ndarray:
    return x.detach().double().cpu().numpy() if hasattr(x, "detach") else np.asarray(x, dtype=np.float64)


def _float(arr: Any) -> Any:
    return arr if isinstance(arr, np.ndarray) else arr.float()


def _attach(data: dict[str, np.ndarray], dims: list[str], coords: dict[str, Any]) -> xr.Dataset:
    out = xr.Dataset({k: (dims[: v.ndim], v) for k, v in data.items()}, coords=coords)
    for name in out.data_vars:
        if name in _LONG:
            out[name].attrs = {"long_name": _LONG[name][0], "units": _LONG[name][1]}
    return out


def attention_distances(
    pattern: Any, layout: Layout, *, dims: Sequence[str] | None = None, min_frame: int = 1, chunk: int = 256
) -> xr.Dataset:
    """How far back each head looks: per head, means over the queries of a causal pattern (..., head, T, T).

    Queries: the visual tokens of frames ≥ `min_frame` inside the pattern (default 1, the tokens that have
    an earlier frame to look at; a one-frame layout uses every visual token). For a query q at
    (f_q, r_q, c_q) with weights w_qk, and V_q = Σ over visual keys k of w_qk (everything but the start
    token for a causal pattern):

    * `frame_distance`  = Σ_k w_qk |f_q − f_k| / V_q, over visual keys k (the weights renormalised to the
      visual keys, so a head that parks its mass on the start token still has a distance);
      `row_distance`, `col_distance` likewise with |r_q − r_k|, |c_q − c_k| (grid distance, across frames
      too); `position_distance` with |q − k| (= q − k in a causal pattern). NaN for a query with V_q = 0,
      which the mean over queries then skips.
    * `sink_mass` = w_q0; `own_frame_mass` = Σ w_qk over keys of frame f_q; `previous_frame_mass` over
      frame f_q − 1; `earlier_frames_mass` over frames < f_q. Raw weights, not renormalised: in a causal
      pattern sink + own + earlier = 1.
    * `temporality` = earlier / (own + earlier), the share of the visual mass on earlier frames.

    Leading axes keep their names (a DataArray's dims; for an array `dims`, default …, layer, head).
    Queries are scored `chunk` at a time, so memory grows with chunk · T, not T².
    """
    arr, lead, coords = _split(pattern, dims)
    T = arr.shape[-1]
    if T > layout.length:
        raise AnalysisError(f"a pattern over {T} positions is longer than the layout's {layout.length}")
    f, r, c = (p[:T] for p in (layout.frame_of_position, layout.row_of_position, layout.col_of_position))
    lo = min(int(min_frame), layout.frames - 1)
    queries = np.flatnonzero(f >= max(lo, 0))
    if queries.size == 0:
        raise AnalysisError(f"no visual query of a frame ≥ {lo} among the pattern's {T} positions")
    visual, keys = f >= 0, np.arange(T)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in (*DISTANCES, *MASSES)}
    for start in range(0, queries.size, chunk):
        q = queries[start : start + chunk]
        w = _float(arr[..., q, :])  # (..., H, n, T)
        fq, fk = f[q, None], f[None, :]
        masks = {
            "own_frame_mass": fq == fk,
            "previous_frame_mass": visual & (fk == fq - 1),  # frame 0's "previous" is no special token
            "earlier_frames_mass": visual & (fk < fq),
        }
        for name, mask in masks.items():
            parts[name].append(_numpy((w * _like(w, mask.astype(np.float32))).sum(-1)))
        parts["sink_mass"].append(_numpy(w[..., 0]))
        mass = _numpy((w * _like(w, visual.astype(np.float32))).sum(-1))  # V_q, (..., H, n)
        steps = {
            "frame_distance": np.abs(fq - fk),
            "row_distance": np.abs(r[q, None] - r[None, :]),
            "col_distance": np.abs(c[q, None] - c[None, :]),
            "position_distance": np.abs(q[:, None] - keys[None, :]),
        }
        with np.errstate(invalid="ignore", divide="ignore"):
            for name, step in steps.items():
                moved = _numpy((w * _like(w, (step * visual).astype(np.float32))).sum(-1))
                parts[name].append(np.where(mass > 0, moved / mass, np.nan))
    per_query = {k: np.concatenate(v, axis=-1) for k, v in parts.items()}  # (..., H, queries)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a head with no visual mass: its distance is NaN
        data = {k: np.nanmean(v, -1) if k in DISTANCES else v.mean(-1) for k, v in per_query.items()}
        own, earlier = data["own_frame_mass"], data["earlier_frames_mass"]
        data["temporality"] = earlier / (own + earlier)
    out = _attach(data, lead, coords)
    out.attrs = {"queries": int(queries.size), "min_frame": lo, "positions": int(T)}
    return out


def frame_mass(pattern: Any, layout: Layout, *, dims: Sequence[str] | None = None) -> xr.DataArray:
    """(..., head, T, T) → (..., head, qframe, kframe): per query frame, the weight each of its tokens puts
    on the tokens of each key frame, averaged over the query frame's tokens (the cache's `attn_frame`)."""
    arr, lead, coords = _split(pattern, dims)
    F, P = layout.frames, layout.tokens_per_frame
    if arr.shape[-1] < 1 + F * P:
        raise AnalysisError(f"frame mass needs every frame: T ≥ {1 + F * P}, got {arr.shape[-1]}")
    vis = _float(arr[..., 1 : 1 + F * P, 1 : 1 + F * P]).reshape(*arr.shape[:-2], F, P, F, P)
    values = _numpy(vis.sum(-1).mean(-2))  # (..., qframe, kframe)
    frames = {"qframe": np.arange(F), "kframe": np.arange(F)}
    return xr.DataArray(
        values, dims=[*lead, "qframe", "kframe"], coords={**coords, **frames}, name="frame_mass",
        attrs={"long_name": _LONG["frame_mass"][0]},
    )  # fmt: skip


def frame_mass_summary(attn_frame: Any, *, min_frame: int = 1) -> xr.Dataset:
    """Per (layer, head), from the cache's `attn_frame` (clip, layer, head, qframe, kframe), lazily.

    Means over clips and query frames ≥ `min_frame` (NaN clips, e.g. unwritten, are skipped):
    `own_frame_mass` (kframe = qframe), `previous_frame_mass` (kframe = qframe − 1), `older_frames_mass`
    (kframe < qframe − 1), `sink_mass` (1 − the row sum: the start token's weight), `temporality`
    ((previous + older) / (own + previous + older)) and `temporal_rank` (0 = the most temporal head,
    NaN heads last). Also `frame_mass` (layer, head, qframe, kframe), the mean over clips. Layers without
    attention (layer 0 reads NaN) are dropped.
    """
    a = attn_frame["attn_frame"] if isinstance(attn_frame, xr.Dataset) else attn_frame
    if not isinstance(a, xr.DataArray) or not {"layer", "head", "qframe", "kframe"} <= set(a.dims):
        raise AnalysisError(
            "expected attn_frame as a DataArray with dims (clip,) layer, head, qframe, kframe"
        )
    a = a.assign_coords(qframe=np.arange(a.sizes["qframe"]), kframe=np.arange(a.sizes["kframe"]))
    over = [d for d in ("clip", "qframe") if d in a.dims]
    later = a.isel(qframe=slice(min(min_frame, a.sizes["qframe"] - 1), None))

    def mean(mask: Any) -> Any:
        return (later * mask).sum("kframe", skipna=False).mean(over, skipna=True)

    qf, kf = later["qframe"], a["kframe"]
    data = {
        "own_frame_mass": mean(kf == qf),
        "previous_frame_mass": mean(kf == qf - 1),
        "older_frames_mass": mean(kf < qf - 1),
        "sink_mass": 1 - mean(xr.ones_like(kf)),
        "frame_mass": a.mean("clip", skipna=True) if "clip" in a.dims else a,
    }
    out = xr.Dataset(data).compute().transpose("layer", "head", ...)
    out = out.dropna("layer", how="all", subset=["own_frame_mass"])
    earlier = out["previous_frame_mass"] + out["older_frames_mass"]
    out["temporality"] = earlier / (out["own_frame_mass"] + earlier)
    t = out["temporality"].values
    order = np.argsort(np.where(np.isnan(t), np.inf, -t), axis=None, kind="stable")
    rank = np.empty(t.size, dtype=np.int64)
    rank[order] = np.arange(t.size)
    out["temporal_rank"] = (("layer", "head"), rank.reshape(t.shape))
    for name in out.data_vars:
        if name in _LONG:
            out[name].attrs = {"long_name": _LONG[name][0], "units": _LONG[name][1]}
    out.attrs = {"clips": int(a.sizes.get("clip", 1)), "min_frame": int(min_frame)}
    return out


def query_map(pattern_row: Any, layout: Layout, query: int | Sequence[int]) -> xr.DataArray:
    """One query's weights over the earlier visual tokens, as `query_weights` (kframe, row, col).

    pattern_row: the query's row of a pattern (T,); query: its (frame, row, col) or position. Keys after
    the query (and beyond the row's length) are NaN, "cannot see", not 0; the start token's weight is the
    attribute `sink`, the query's place `query` (frame, row, col) and `query_position`.
    """
    row = _numpy(pattern_row.values if isinstance(pattern_row, xr.DataArray) else pattern_row)
    if row.ndim != 1 or row.size > layout.length:
        raise AnalysisError(f"a pattern row is (T,) with T ≤ {layout.length}, got {row.shape}")
    where = [int(i) for i in np.atleast_1d(query)]
    q = where[0] if len(where) == 1 else layout.position(*where)
    if not (0 <= q < row.size) or layout.frame_of_position[q] < 0:
        raise AnalysisError(f"query position {q} is not a visual token of a row of {row.size} positions")
    positions = np.arange(1, 1 + layout.frames * layout.tokens_per_frame)
    seen = positions <= q
    values = np.full(positions.size, np.nan)
    values[seen] = row[positions[seen]]
    return xr.DataArray(
        values.reshape(layout.frames, layout.rows, layout.cols),
        dims=("kframe", "row", "col"),
        coords={
            "kframe": np.arange(layout.frames),
            "row": np.arange(layout.rows),
            "col": np.arange(layout.cols),
        },
        name="query_weights",
        attrs={
            "sink": float(row[0]),
            "query": list(layout.locate(q)),
            "query_position": q,
            "long_name": "attention weight of the query on each key token",
        },  # fmt: skip
    )


def rank_heads(
    summary: xr.Dataset, by: str = "temporal", *, top: int | None = None, ascending: bool | None = None
) -> xr.Dataset:
    """(layer, head) pairs sorted along a new dim `rank`, with every (layer, head) variable of `summary`.

    by="temporal": most temporal first (`temporality` descending: mass on earlier frames rather than the
    query's own); by="local": the reverse, heads that stay in the query's own frame first; any other
    (layer, head) variable of `summary` sorts descending (ascending=True: smallest first, e.g. the
    shortest `position_distance`). NaN values go last; `top` keeps the first ones.
    """
    name = "temporality" if by in ("temporal", "local") else by
    if name not in summary or set(summary[name].dims) != {"layer", "head"}:
        raise AnalysisError(
            f"cannot rank heads by {by!r}: the summary has no (layer, head) variable {name!r}"
        )
    up = (by == "local") if ascending is None else ascending
    values = summary[name].transpose("layer", "head").values
    key = np.where(np.isnan(values), np.inf, values if up else -values)
    order = np.argsort(key, axis=None, kind="stable")[:top]
    li, hi = np.unravel_index(order, values.shape)
    pairs = [k for k, v in summary.data_vars.items() if set(v.dims) == {"layer", "head"}]
    index = {"layer": xr.DataArray(li, dims="rank"), "head": xr.DataArray(hi, dims="rank")}
    out = summary[pairs].isel(index).assign_coords(rank=np.arange(order.size))
    out.attrs = {"by": by, "ascending": bool(up)}
    return out
