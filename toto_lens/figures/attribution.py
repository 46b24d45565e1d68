"""Attribution over earlier tokens: the mass per frame offset beside its uniform control, and the mean
share of one token at each (Δrow, Δcol) offset in the target's own frame and the frames before it."""

from __future__ import annotations

from typing import Any

import numpy as np

MAPS = 3  # Δframe = 0, −1, −2


def attribution_figure(result: Any) -> Any:
    """Left: mean |share| per Δframe (and the start token) beside the share uniform mass would give.
    Right: one heatmap per Δframe of the mean |share| of the token at (Δrow, Δcol), target at (0, 0)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    dframes = [int(v) for v in result["dframe"].values]
    shown = dframes[:MAPS]
    titles = ["mass per frame offset", *(f"Δframe = {d}" for d in shown)]
    fig = make_subplots(
        rows=1, cols=1 + len(shown), subplot_titles=titles, horizontal_spacing=0.06,
        column_widths=[0.34, *([0.66 / len(shown)] * len(shown))],
    )  # fmt: skip
    labels = [*(str(d) for d in dframes), "start"]
    share = [*result["share_abs"].mean("target").values, float(result["start_abs"].mean())]
    signed = [*result["share_signed"].mean("target").values, float(result["start_signed"].mean())]
    uniform = [*result["uniform"].mean("target").values, float(result["start_uniform"].mean())]
    fig.add_trace(go.Bar(x=labels, y=share, name="|attribution| share", marker_color="#1f77b4"), row=1, col=1)
    fig.add_trace(go.Bar(x=labels, y=signed, name="signed share", marker_color="#ff7f0e"), row=1, col=1)
    fig.add_trace(go.Bar(x=labels, y=uniform, name="control: uniform over earlier tokens",
                         marker_color="#bbbbbb"), row=1, col=1)  # fmt: skip
    fig.update_xaxes(title_text="dframe", type="category", row=1, col=1)
    fig.update_yaxes(title_text="share of Σ|attribution|", row=1, col=1)
    drows, dcols = [int(v) for v in result["drow"].values], [int(v) for v in result["dcol"].values]
    offset = result["offset_abs"].sel(dframe=shown)
    # log10 of the share: the nearest tokens hold orders of magnitude more than the rest of a frame.
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log10(np.where(offset.values > 0, offset.values, np.nan))
    low, top = (np.nanpercentile(logs, 2), np.nanmax(logs)) if np.isfinite(logs).any() else (-3.0, 0.0)
    low = min(low, top - 1.0)
    for i, (d, z) in enumerate(zip(shown, logs, strict=True), start=2):
        fig.add_trace(
            go.Heatmap(z=z, x=dcols, y=drows, customdata=offset.sel(dframe=d).values, coloraxis="coloraxis",
                       name=f"Δframe {d}", hovertemplate="Δrow %{y}, Δcol %{x}: %{customdata:.2e}<extra></extra>"),
            row=1, col=i,
        )  # fmt: skip
        fig.add_trace(go.Scatter(x=[0], y=[0], mode="markers", showlegend=i == 2, name="the target's place",
                                 marker={"symbol": "circle-open", "size": 12, "color": "red", "line": {"width": 2}}), row=1, col=i)  # fmt: skip
        fig.update_xaxes(title_text="dcol", row=1, col=i)
        fig.update_yaxes(title_text="drow" if i == 2 else None, autorange="reversed", scaleanchor=f"x{i}",
                         row=1, col=i)  # fmt: skip
    ticks = np.arange(np.floor(low), np.ceil(top) + 1)
    colorbar = {"title": "mean |share|<br>of one token", "tickvals": ticks,
                "ticktext": [f"{10.0**t:.0e}" for t in ticks]}  # fmt: skip
    gap = result.get("gap_relative")
    worst = float(gap.max()) if gap is not None else float("nan")
    worst_text = f"{worst:.1%}" if worst >= 1e-3 else f"{worst:.1g}"
    gap_text = f"; completeness gap ≤ {worst_text} of |F(x) − F(x')|" if gap is not None else ""
    ckpt = result.attrs.get("checkpoint", "")
    fig.update_layout(
        title=f"Integrated gradients of {ckpt}: where the evidence for a token sits "
        f"({result.sizes['target']} targets{gap_text})".replace(" of :", ":"),
        height=430, barmode="group", coloraxis={"colorscale": "Viridis", "cmin": low, "cmax": top,
        "colorbar": colorbar}, legend={"orientation": "h", "y": -0.25},
    )  # fmt: skip
    return fig
