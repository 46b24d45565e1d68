"""Plots of where attention goes: one query's weights over the earlier frames, and heads side by side.

Takes the results of `toto_lens.analysis.attention` and returns plotly Figures:

* `query_attention_figure`: the frames up to the query's as greyscale images, each with the query's
  attention weights laid over it (one cell per token, at pixel scale, one colour scale for every frame),
  tokens the query cannot see dimmed, the query outlined, and the start-token (sink) weight in the title;
* `head_summary_figure`: one point per (layer, head): distance in frames against sink mass, and own-frame
  against earlier-frames mass (local heads to the right, temporal heads up);
* `frame_mass_figure`: frame-to-frame attention mass matrices, layer × head small multiples.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
import xarray as xr
from plotly.subplots import make_subplots

from toto_lens.figures import FigureError

# Transparent at 0, opaque-ish red at the top: a weak weight leaves the pixels readable, a strong one glows.
COLORSCALE = [[0.0, "rgba(255,230,0,0)"], [0.4, "rgba(255,150,0,0.45)"], [1.0, "rgba(220,0,0,0.65)"]]
HIDDEN = 0.3  # brightness left to pixels the query cannot see (keys after it)
MAX_PANELS = 64  # frame-mass small multiples drawn without choosing layers


def png_source(grey: np.ndarray) -> str:
    """(H, W) in [0, 1] → a data URI: a PNG source, far smaller in the HTML than a JSON array of pixels."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray((np.clip(grey, 0, 1) * 255).astype(np.uint8)).convert("RGB").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def query_attention_figure(
    frames_pixels: Any,
    weights: Any,
    query: Sequence[int],
    sink: float,
    *,
    title: str | None = None,
    columns: int = 8,
) -> go.Figure:
    """One query's attention over the frames up to its own (weights (kframe, row, col), NaN = cannot see).

    frames_pixels: the clip's frames (frame, y, x) in [0, 1]; query: (frame, row, col); sink: the weight
    on the start token. Frames sit `columns` to a row; each subplot title gives that frame's share.
    """
    pixels, w = np.asarray(frames_pixels, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    if pixels.ndim != 3 or w.ndim != 3 or pixels.shape[0] != w.shape[0]:
        raise FigureError(
            f"expected frames (frame, y, x) and weights (kframe, row, col), got {pixels.shape}, {w.shape}"
        )
    qf, qr, qc = (int(i) for i in query)
    if not (0 <= qf < w.shape[0] and 0 <= qr < w.shape[1] and 0 <= qc < w.shape[2]):
        raise FigureError(f"query {tuple(query)} outside the grid {w.shape}")
    n = qf + 1
    cols = min(n, columns)
    rows = -(-n // cols)
    (_, H, W), (_, R, C) = pixels.shape, w.shape
    ph, pw = H / R, W / C  # pixels per token
    shares = [float(np.nansum(w[f])) for f in range(n)]
    fig = make_subplots(
        rows=rows, cols=cols, horizontal_spacing=0.01, vertical_spacing=0.2 / rows,
        subplot_titles=[f"frame {f}{' (query)' if f == qf else ''}<br>{shares[f]:.3f}" for f in range(n)],
    )  # fmt: skip
    top = np.nanmax(w[:n]) if np.isfinite(w[:n]).any() else 1.0
    token_rows, token_cols = np.arange(H) * R // H, np.arange(W) * C // W
    for f in range(n):
        row, col = f // cols + 1, f % cols + 1
        hidden = np.isnan(w[f])[np.ix_(token_rows, token_cols)]  # (y, x): pixels of unseen tokens
        fig.add_trace(
            go.Image(source=png_source(np.where(hidden, HIDDEN, 1) * pixels[f]), hoverinfo="skip"), row, col
        )
        fig.add_trace(
            go.Heatmap(
                z=w[f], x=(np.arange(C) + 0.5) * pw - 0.5, y=(np.arange(R) + 0.5) * ph - 0.5,
                coloraxis="coloraxis", hoverongaps=False,
                text=[[f"kframe {f} row {r} col {c}" for c in range(C)] for r in range(R)],
                hovertemplate="%{text}<br>weight %{z:.4f}<extra></extra>",
            ),
            row, col,
        )  # fmt: skip
    fig.add_shape(
        type="rect", x0=qc * pw - 0.5, x1=(qc + 1) * pw - 0.5, y0=qr * ph - 0.5, y1=(qr + 1) * ph - 0.5,
        line={"color": "#00e5ff", "width": 3}, row=qf // cols + 1, col=qf % cols + 1,
    )  # fmt: skip
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_xaxes(title_text="x", row=rows, col=1)
    fig.update_yaxes(title_text="y", row=rows, col=1)
    heading = (
        f"Attention of the query (frame {qf}, row {qr}, col {qc}): start-token (sink) mass {sink:.3f}"
        "<br><sup>over each frame: its share of the weight; dimmed: tokens after the query</sup>"
    )
    fig.update_layout(
        title=title or heading,
        coloraxis={
            "colorscale": COLORSCALE,
            "cmin": 0,
            "cmax": float(top),
            "colorbar": {"title": {"text": "weight"}},
        },
        template="plotly_white",
        width=max(420, 140 * cols + 140),
        height=190 * rows + 140,
        margin={"l": 40, "r": 40, "t": 110, "b": 40},
    )
    fig.update_annotations(font_size=11)
    return fig


def _pairs(summary: xr.Dataset, names: Sequence[str]) -> dict[str, np.ndarray]:
    missing = [k for k in names if k not in summary]
    if missing:
        raise FigureError(
            f"the head summary lacks {', '.join(missing)} (expected attention_distances' result)"
        )
    flat = {k: summary[k].transpose("layer", "head").values.ravel() for k in names}
    layers, heads = np.meshgrid(summary["layer"].values, summary["head"].values, indexing="ij")
    return {**flat, "layer": layers.ravel(), "head": heads.ravel()}


def head_summary_figure(summary: xr.Dataset, *, title: str | None = None) -> go.Figure:
    """One point per (layer, head), coloured by layer: frame distance against sink mass, and own-frame
    against earlier-frames mass. Hover names the head L<layer>.H<head>."""
    names = ("frame_distance", "sink_mass", "own_frame_mass", "earlier_frames_mass")
    p = _pairs(summary, names)
    labels = [f"L{layer}.H{head}" for layer, head in zip(p["layer"], p["head"], strict=True)]
    fig = make_subplots(
        rows=1, cols=2, horizontal_spacing=0.12,
        subplot_titles=("how far back, and how much on the start token", "own frame (local) or earlier"),
    )  # fmt: skip
    marker = {
        "color": p["layer"],
        "coloraxis": "coloraxis",
        "size": 10,
        "line": {"width": 1, "color": "white"},
    }
    for col, (x, y) in enumerate(
        (("frame_distance", "sink_mass"), ("own_frame_mass", "earlier_frames_mass")), 1
    ):
        fig.add_trace(
            go.Scatter(
                x=p[x], y=p[y], mode="markers+text" if len(labels) <= 32 else "markers",
                text=labels, textposition="top center", textfont={"size": 9}, marker=marker, showlegend=False,
                hovertemplate=f"%{{text}}<br>{x} %{{x:.3f}}<br>{y} %{{y:.3f}}<extra></extra>",
            ),
            row=1, col=col,
        )  # fmt: skip
        fig.update_xaxes(title_text=x + (" (frames)" if x == "frame_distance" else ""), row=1, col=col)
        fig.update_yaxes(title_text=y, row=1, col=col)
    fig.update_yaxes(range=[-0.02, 1.02])  # masses: the whole [0, 1], so heads of any model compare
    fig.update_xaxes(range=[-0.02, 1.02], row=1, col=2)
    fig.update_xaxes(rangemode="tozero", row=1, col=1)
    fig.update_layout(
        title=title or "Heads by distance and mass (one point per layer and head)",
        coloraxis={"colorscale": "Viridis", "colorbar": {"title": {"text": "layer"}, "dtick": 1}},
        template="plotly_white",
        height=460,
    )
    return fig


def frame_mass_figure(
    summary: xr.Dataset, *, layers: Sequence[int] | None = None, title: str | None = None
) -> go.Figure:
    """Frame-to-frame mass `frame_mass` (layer, head, qframe, kframe) as layer × head small multiples.

    layers: which to draw; default every layer, or only the middle one when that would be more than 64
    panels. One colour scale (0 … the largest mass) for every panel.
    """
    if "frame_mass" not in summary:
        raise FigureError("the summary has no frame_mass (layer, head, qframe, kframe)")
    m = summary["frame_mass"].transpose("layer", "head", "qframe", "kframe")
    every = m["layer"].values.tolist()
    if layers is None:
        layers = every if len(every) * m.sizes["head"] <= MAX_PANELS else [every[(len(every) - 1) // 2]]
    if not layers or any(layer not in every for layer in layers):
        raise FigureError(f"layers {list(layers)}: the summary has layers {every}")
    heads = m["head"].values.tolist()
    fig = make_subplots(
        rows=len(layers), cols=len(heads), horizontal_spacing=0.02, vertical_spacing=0.25 / len(layers),
        subplot_titles=[f"L{layer}.H{head}" for layer in layers for head in heads],
    )  # fmt: skip
    values = m.sel(layer=list(layers)).values.copy()
    future = m["kframe"].values[None, :] > m["qframe"].values[:, None]
    values[..., future] = np.nan  # key frames after the query frame: cannot be seen, not "no mass"
    top = float(np.nanmax(values)) if np.isfinite(values).any() else 1.0
    for i, layer in enumerate(layers):
        for j, head in enumerate(heads):
            fig.add_trace(
                go.Heatmap(
                    z=values[i, j], x=m["kframe"].values, y=m["qframe"].values, coloraxis="coloraxis",
                    hovertemplate=f"L{layer}.H{head}<br>qframe %{{y}} → kframe %{{x}}<br>mass %{{z:.3f}}"
                    "<extra></extra>",
                ),
                row=i + 1, col=j + 1,
            )  # fmt: skip
    fig.update_yaxes(autorange="reversed", showticklabels=False, showgrid=False)
    fig.update_xaxes(showticklabels=False, showgrid=False)
    for i in range(len(layers)):
        fig.update_yaxes(title_text="qframe", showticklabels=True, row=i + 1, col=1)
    for j in range(len(heads)):
        fig.update_xaxes(title_text="kframe", showticklabels=True, row=len(layers), col=j + 1)
    fig.update_layout(
        title=title or "Frame-to-frame attention mass (each row sums to 1 − sink)",
        coloraxis={"colorscale": "Viridis", "cmin": 0, "cmax": top, "colorbar": {"title": {"text": "mass"}}},
        template="plotly_white",
        height=max(320, 60 + 210 * len(layers)),
        width=max(500, 90 + 190 * len(heads)),
    )
    return fig
