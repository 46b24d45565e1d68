"""The logit lens: KL(final ‖ layer) and top-1 agreement over depth, per frame, and decoded predictions."""

from __future__ import annotations

from typing import Any

import numpy as np


def lens_figure(result: Any) -> Any:
    """Per-layer mean KL and agreement (left), and KL per layer × predicted frame (right)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    layers = [int(v) for v in result["layer"].values]
    frames = [int(v) for v in result["frame"].values]
    fig = make_subplots(
        rows=1, cols=3, column_widths=[0.3, 0.3, 0.4], horizontal_spacing=0.08,
        subplot_titles=("KL(final ‖ layer), nats", "top-1 agreement with the final layer",
                        "KL per layer and predicted frame"),
    )  # fmt: skip
    for col, (key, name) in enumerate((("kl", "KL"), ("agreement", "agreement")), start=1):
        fig.add_trace(go.Scatter(x=layers, y=result[f"{key}_mean"].values, mode="lines+markers",
                                 name=f"{name}, every frame", line={"color": "black"}), row=1, col=col)  # fmt: skip
        for f, dash, color in ((frames[0], "dot", "#d62728"), (frames[-1], "dash", "#1f77b4")):
            fig.add_trace(go.Scatter(x=layers, y=result[key].sel(frame=f).values, mode="lines",
                                     name=f"{name}, frame {f}", line={"dash": dash, "color": color}), row=1, col=col)  # fmt: skip
        control = result.attrs.get(f"control_{key}_mean")
        if control is not None and np.isfinite(control):
            fig.add_hline(y=control, line={"dash": "dashdot", "color": "grey"}, row=1, col=col,
                          annotation_text="another clip's final", annotation_position="top left")  # fmt: skip
        fig.update_xaxes(title_text="layer", tickvals=layers, row=1, col=col)
    fig.update_yaxes(rangemode="tozero", row=1, col=1)
    fig.update_yaxes(range=[0, 1.05], row=1, col=2)
    fig.add_trace(
        go.Heatmap(z=result["kl"].values, x=frames, y=layers, colorscale="Viridis",
                   colorbar={"title": "nats", "x": 1.0}, name="KL"),
        row=1, col=3,
    )  # fmt: skip
    fig.update_xaxes(title_text="predicted frame", row=1, col=3)
    fig.update_yaxes(title_text="layer", tickvals=layers, row=1, col=3)
    ckpt = result.attrs.get("checkpoint", "")
    fig.update_layout(
        title=f"Logit lens of {ckpt} ({result.attrs.get('clips', '?')} clips)".replace(" of  (", " ("),
        height=460, legend={"orientation": "h", "y": -0.2},
    )  # fmt: skip
    return fig


def lens_grid_figure(result: Any) -> Any:
    """The chosen clip's frames (top row) and each layer's top-1 prediction of them, decoded to pixels."""
    import plotly.graph_objects as go

    pixels = np.asarray(result["grid"].values, dtype=np.float32)  # (row, frame, y, x)
    rows, frames, h, w = pixels.shape
    canvas = np.full((rows * (h + 1) - 1, frames * (w + 1) - 1), np.nan, np.float32)
    for r in range(rows):
        for f in range(frames):
            canvas[r * (h + 1) : r * (h + 1) + h, f * (w + 1) : f * (w + 1) + w] = pixels[r, f]
    labels = [str(v) for v in result["grid_row"].values]
    fig = go.Figure(
        go.Heatmap(z=canvas, colorscale="gray", zmin=0, zmax=1, showscale=False, hoverinfo="skip")
    )
    fig.update_yaxes(autorange="reversed", tickvals=[r * (h + 1) + h / 2 for r in range(rows)],
                     ticktext=labels, title_text="layer", scaleanchor="x")  # fmt: skip
    fig.update_xaxes(tickvals=[f * (w + 1) + w / 2 for f in range(frames)],
                     ticktext=[str(f) for f in range(frames)], title_text="frame")  # fmt: skip
    fig.update_layout(
        title=f"Top-1 prediction of each token, per layer, decoded (clip {result.attrs.get('grid_clip')})",
        height=120 + 60 * rows,
    )
    return fig
