"""`studies.attention`: where one query token looks, drawn over the frames, and how each head spreads.

One clip of a cache: the chosen query's weights over every earlier token (from the store's
`attn_pattern` when it holds that clip, otherwise computed live for that one clip), the clip's frames
decoded by the checkpoint's tokenizer to draw them on, per-(layer, head) distances and masses of the clip
(live, every layer, one clip), and the frame-to-frame mass of the cache's `attn_frame` over all its clips
when the store has it (otherwise of the clip).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from toto_lens.progress import Progress, report
from toto_lens.studies.base import (
    Study,
    StudyError,
    Summary,
    cache_args,
    cache_checkpoint,
    command_line,
    fmt,
    open_study_cache,
    provenance,
)

TOP = 5  # heads per ranking in the summary
_MEAN = ("own_frame_mass", "previous_frame_mass", "older_frames_mass", "sink_mass", "temporality")


def attention(
    ckpt: str | os.PathLike | None = None,
    *,
    cache: Any = None,
    dataset: str | None = None,
    clip: int = 0,
    layer: int | None = None,
    head: int = 0,
    query: str | Sequence[int] | None = None,
    progress: Progress | None = None,
    trust_code: bool = False,
) -> Study:
    """One query's attention map over the earlier frames, and every head's distances and masses.

    clip: the clip's index in the cache (its `clip` coordinate); layer: the cache's numbering, default the
    middle block (⌈blocks / 2⌉); head; query: (frame, row, col) or "F,R,C", default the last frame's
    centre token. Options as `toto-lens attention`.
    """
    from toto_lens.analysis.attention import frame_mass_summary, query_map
    from toto_lens.data.layout import layout_of
    from toto_lens.figures.attention import frame_mass_figure, head_summary_figure, query_attention_figure
    from toto_lens.run.attention import clip_attention_summary

    ds = open_study_cache(ckpt, cache, dataset)
    layout = layout_of(ds)
    ck, notes = cache_checkpoint(
        ds, ckpt, trust_code=trust_code, what="the attention study (live patterns and frames)"
    )
    n_layers, n_heads = ck.config.n_layers, ck.config.n_heads
    layer = (n_layers + 1) // 2 if layer is None else int(layer)
    if not 1 <= layer <= n_layers or not 0 <= int(head) < n_heads:
        raise StudyError(
            f"layer {layer} head {head}: {ck.name} has layers 1 … {n_layers}, heads 0 … {n_heads - 1}"
        )
    q = _query(query, layout)
    tokens = _tokens(ds, clip)
    position = layout.position(*q)
    report(progress, "attention", 0, 3, "steps")
    row, source = _pattern_row(ds, ck, tokens, int(clip), layer, int(head), position)
    weights = query_map(row, layout, q)
    heads = clip_attention_summary(ck, tokens, layout)
    report(progress, "attention", 1, 3, "steps")
    if "attn_frame" in ds:
        frames_summary, frame_source = frame_mass_summary(ds["attn_frame"]), "store"
    else:
        frames_summary, frame_source = (
            frame_mass_summary(heads["frame_mass"].expand_dims(clip=[clip])),
            "live",
        )
    pixels, note = _frames(ds, layout, tokens, trust_code)
    notes += [note] if note else []
    report(progress, "attention", 2, 3, "steps")
    result = _combine(heads, frames_summary, weights, pixels)
    sink = float(weights.attrs["sink"])
    result.attrs.update(
        provenance("attention", ds, clip=int(clip), layer=layer, head=int(head), query=list(q))
    )
    result.attrs.update(clip=int(clip), layer=layer, head=int(head), query=list(q), query_position=position,
                        sink=sink, pattern_source=source, frame_mass_source=frame_source,
                        frame_mass_clips=int(frames_summary.attrs["clips"]))  # fmt: skip
    result.attrs["command"] = command_line(
        "attention", *cache_args(ckpt, cache, ds, dataset), "--clip", int(clip), "--layer", layer,
        "--head", int(head), "--query", ",".join(map(str, q)), "--trust-code", trust_code,
    )  # fmt: skip
    title = (
        f"{ck.name}, clip {clip}, layer {layer} head {head}: query (frame {q[0]}, row {q[1]}, col {q[2]}), "
        f"start-token (sink) mass {sink:.3f}<br><sup>over each frame: its share of the weight; dimmed: "
        f"tokens after the query; pattern from the {'store' if source == 'store' else 'model, live'}</sup>"
    )
    figures = [query_attention_figure(pixels, weights, q, sink, title=title), head_summary_figure(result)]
    figures.append(frame_mass_figure(result, layers=None if n_layers * n_heads <= 64 else [layer]))
    report(progress, "attention", 3, 3, "steps")
    return Study("attention", result, figures, attention_summary(result, notes))


def _combine(heads: Any, frames_summary: Any, weights: Any, pixels: np.ndarray) -> Any:
    """One Dataset: the clip's per-head numbers, the frame-to-frame summary (its per-head means prefixed
    `mean_`), the query's weights and the frames; layers outer-joined (a store may hold fewer)."""
    import xarray as xr

    means = frames_summary.drop_vars("depth", errors="ignore")
    result = xr.merge(
        [heads.drop_vars("frame_mass"), means[["frame_mass", "temporal_rank"]],
         means[list(_MEAN)].rename({k: f"mean_{k}" for k in _MEAN})],
        join="outer", compat="no_conflicts", combine_attrs="drop_conflicts",
    )  # fmt: skip
    result.attrs = {}
    result["query_weights"] = (weights.dims, weights.values, {"long_name": weights.attrs["long_name"]})
    result["frames"] = (("frame", "y", "x"), pixels, {"long_name": "decoded frame pixels in [0, 1]"})
    for name in _MEAN:
        long = frames_summary[name].attrs.get("long_name", name.replace("_", " "))
        result[f"mean_{name}"].attrs = {"long_name": f"{long}, from the frame-to-frame mass, mean over clips"}
    return result.assign_coords({d: np.arange(result.sizes[d]) for d in ("frame", "kframe", "row", "col")})


def _query(query: Any, layout: Any) -> tuple[int, int, int]:
    if query is None:
        return layout.frames - 1, layout.rows // 2, layout.cols // 2
    parts = (
        query.strip("()[] ").split(",") if isinstance(query, str) else list(query)
    )  # "F,R,C" or "(F, R, C)"
    try:
        f, r, c = (int(p) for p in parts)
        layout.position(f, r, c)
    except (ValueError, IndexError):
        raise StudyError(
            f"query {query!r}: give frame,row,col inside {layout.frames}×{layout.rows}×{layout.cols}"
        ) from None
    return f, r, c


def _tokens(ds: Any, clip: int) -> np.ndarray:
    clips = ds["clip"].values
    if clip not in clips:
        raise StudyError(f"no clip {clip} in the cache: it holds clips {clips.min()} … {clips.max()}")
    if "complete" in ds and not int(ds["complete"].sel(clip=clip)):
        raise StudyError(f"clip {clip} of the cache is not written yet (an extraction still running?)")
    return np.asarray(ds["tokens"].sel(clip=clip).values, dtype=np.int64)


def _pattern_row(ds: Any, ck: Any, tokens: np.ndarray, clip: int, layer: int, head: int, position: int):
    """The query's pattern row (T,) and where it came from: "store" or "live"."""
    from toto_lens.run.attention import clip_patterns

    if "attn_pattern" in ds and layer in ds["layer"].values:
        row = ds["attn_pattern"].sel(clip=clip, layer=layer, head=head, qpos=position).values
        if np.isfinite(row).all():
            return row.astype(np.float64), "store"
    return clip_patterns(ck, tokens, [layer]).sel(layer=layer, head=head, qpos=position).values, "live"


def _frames(ds: Any, layout: Any, tokens: np.ndarray, trust_code: bool = False) -> tuple[np.ndarray, str]:
    """The clip's frames (frame, y, x) decoded by the cache's tokenizer; a blank grid if it cannot."""
    from toto_lens.errors import TotoLensError
    from toto_lens.store.reader import cache_tokenizer

    try:
        tok = cache_tokenizer(ds, trust_code=trust_code)
        frames = np.asarray(tok.decode(layout.unpack(tokens)), dtype=np.float32)
        return (frames.mean(-1) if frames.ndim == 4 else frames), ""  # colour: its mean over channels
    except (TotoLensError, NotImplementedError) as e:
        blank = np.full((layout.frames, layout.rows, layout.cols), 0.5, dtype=np.float32)
        return blank, f"note: frames not decoded ({e}); the map is drawn on a blank grid"


def attention_summary(result: Any, notes: list[str]) -> Summary:
    """The most temporal and the most local heads of the clip, and the query's sink mass."""
    from toto_lens.analysis.attention import rank_heads

    a = result.attrs
    cols = ("temporality", "own_frame_mass", "earlier_frames_mass", "sink_mass", "frame_distance",
            "row_distance", "col_distance", "position_distance")  # fmt: skip
    top = min(TOP, max(1, result.sizes["layer"] * result.sizes["head"] // 2))  # two lists, no head twice
    ranked = {by: rank_heads(result, by, top=top) for by in ("temporal", "local")}
    data_rows: dict[str, list[dict[str, Any]]] = {}
    table = []
    for by, r in ranked.items():
        data_rows[by] = []
        for i in range(r.sizes["rank"]):
            one = r.isel(rank=i)
            entry = {"layer": int(one["layer"]), "head": int(one["head"]), **{k: float(one[k]) for k in cols}}
            data_rows[by].append(entry)
            label = f"L{entry['layer']}.H{entry['head']}"
            digits = [".3f"] * 4 + [".2f"] * 4
            table.append(
                [f"{by} {i + 1}", label, *(fmt(entry[k], d) for k, d in zip(cols, digits, strict=True))]
            )
    f, r_, c = a["query"]
    headline = (
        f"clip {a['clip']}, L{a['layer']}.H{a['head']}, query (frame {f}, row {r_}, col {c}) at position "
        f"{a['query_position']}: start-token (sink) mass {fmt(a['sink'])}; pattern from the "
        f"{'store' if a['pattern_source'] == 'store' else 'model (live)'}; frame-to-frame mass "
        + (
            f"over the store's {a['frame_mass_clips']} clips"
            if a["frame_mass_source"] == "store"
            else "of this clip (the store has no attn_frame)"
        )
    )
    keys = ("clip", "layer", "head", "query", "query_position", "sink", "pattern_source", "frame_mass_source")
    data = {k: a[k] for k in keys}
    data.update(most_temporal=data_rows["temporal"], most_local=data_rows["local"])
    return Summary(
        title="heads of the clip, most temporal and most local (distances over visual keys)",
        columns=[
            "order",
            "head",
            "temporal",
            "own frame",
            "earlier",
            "sink",
            "Δframe",
            "Δrow",
            "Δcol",
            "Δpos",
        ],
        rows=table,
        data=data,
        notes=[*notes, headline],
        caption="temporal = earlier / (own + earlier frames) mass, over queries of frames ≥ 1",
    )
