"""Head ablation: per-frame loss intact, with the chosen heads ablated, and with random heads ablated."""

from __future__ import annotations

from typing import Any

import numpy as np


def ablation_figure(result: Any) -> Any:
    """Loss per frame: the intact model, the chosen heads ablated, and the random draws' mean ± std."""
    import plotly.graph_objects as go

    frames = [int(v) for v in result["frame"].values]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=frames, y=result["loss_intact"].values, mode="lines+markers",
                             name="intact", line={"color": "black"}))  # fmt: skip
    heads = result.attrs.get("heads", "")
    fig.add_trace(go.Scatter(x=frames, y=result["loss_ablated"].values, mode="lines+markers",
                             name=f"ablated: {heads or 'no heads'}", line={"color": "#d62728"}))  # fmt: skip
    if result.sizes.get("draw", 0):
        random = np.asarray(result["loss_random"].values, dtype=np.float64)
        mean, std = random.mean(0), random.std(0)
        fig.add_trace(go.Scatter(
            x=frames, y=mean, mode="lines+markers", line={"color": "#1f77b4", "dash": "dash"},
            error_y={"type": "data", "array": std, "visible": True},
            name=f"random heads, mean ± std of {random.shape[0]} draws",
        ))  # fmt: skip
    fig.update_xaxes(title_text="frame", tickvals=frames)
    fig.update_yaxes(title_text="loss (nats)", rangemode="tozero")
    ckpt = result.attrs.get("checkpoint", "")
    fig.update_layout(
        title=f"Head ablation ({result.attrs.get('ablation', 'zero')}) of {ckpt}: loss per frame".replace(" of :", ":"),
        height=420, legend={"orientation": "h", "y": -0.2},
    )  # fmt: skip
    return fig
