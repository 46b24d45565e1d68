"""Plots of head scores (Olsson et al. 2022; Toto appendix A.3): a layer × head heatmap per score, and emergence.

Takes the Datasets of `toto_lens.analysis.induction` (one model, or several stacked along `checkpoint`
by `stack_checkpoints`) and returns plotly Figures. Heads above a threshold (0.4 by default) are marked
on the heatmaps; across checkpoints, the strongest head and the number of heads above the threshold are
drawn against the training step, with the loss on the first and second copy of repeated random tokens.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import xarray as xr
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from toto_lens.analysis.induction import SCORES, THRESHOLD
from toto_lens.figures import FigureError

_TITLES = {
    "prefix_matching": "prefix matching (random tokens)",
    "repeated_clip": "repeated clip",
    "frame_induction": "frame induction (copy target)",
    "previous_frame": "previous frame",
    "previous_row": "previous row",
    "induction_detector": "detector Σ A·M / Σ A",
}


def _present(scores: xr.Dataset) -> list[str]:
    if not isinstance(scores, xr.Dataset) or "prefix_matching" not in scores:
        raise FigureError("expected an induction_scores Dataset (with a prefix_matching variable)")
    return [k for k in SCORES if k in scores and np.isfinite(scores[k].values).any()]


def induction_heatmap_figure(
    scores: xr.Dataset, threshold: float = THRESHOLD, checkpoint: str | None = None, title: str | None = None
) -> go.Figure:
    """One layer × head heatmap per score (colour 0 … 1), heads above `threshold` circled.

    With a `checkpoint` dimension, shows `checkpoint` (default: the last one).
    """
    names = _present(scores)
    if "checkpoint" in scores.dims:
        label = scores["checkpoint"].values[-1] if checkpoint is None else checkpoint
        if label not in scores["checkpoint"].values:
            raise FigureError(f"no checkpoint {label!r}; have {list(scores['checkpoint'].values)}")
        scores = scores.sel(checkpoint=label).dropna("layer", how="all", subset=["prefix_matching"])
        where = f" of {label}"
    else:
        where = f" of {scores.attrs['checkpoint']}" if "checkpoint" in scores.attrs else ""
    fig = make_subplots(
        rows=1,
        cols=len(names),
        subplot_titles=[_TITLES[k] for k in names],
        shared_yaxes=True,
        horizontal_spacing=0.04,
    )
    for i, name in enumerate(names, start=1):
        z = scores[name].transpose("layer", "head")
        layers, heads = z["layer"].values, z["head"].values
        fig.add_trace(
            go.Heatmap(
                z=z.values,
                x=heads,
                y=layers,
                zmin=0,
                zmax=1,
                colorscale="Viridis",
                showscale=i == len(names),
                colorbar={"title": {"text": "score"}},
                hovertemplate=f"layer %{{y}} head %{{x}}<br>{name} %{{z:.3f}}<extra></extra>",
            ),
            row=1,
            col=i,
        )
        li, hi = np.nonzero(np.nan_to_num(z.values) > threshold)
        fig.add_trace(
            go.Scatter(
                x=heads[hi],
                y=layers[li],
                mode="markers",
                marker={"symbol": "circle-open", "size": 14, "color": "white", "line": {"width": 2}},
                name=f"head > {threshold:g}",
                legendgroup="above",
                showlegend=i == 1 and li.size > 0,
                hoverinfo="skip",
            ),
            row=1,
            col=i,
        )
        fig.update_xaxes(title_text="head", dtick=1, row=1, col=i)
    fig.update_yaxes(title_text="layer", dtick=1, autorange="reversed", row=1, col=1)
    losses = ""
    if "first_copy_loss" in scores and "second_copy_loss" in scores:
        first, second = float(scores["first_copy_loss"]), float(scores["second_copy_loss"])
        losses = f" — repeated random tokens: loss {first:.2f} (1st copy) → {second:.2f} (2nd copy)"
    fig.update_layout(
        title=title if title is not None else f"Head scores{where}{losses}",
        template="plotly_white",
        height=max(320, 60 + 28 * scores.sizes["layer"]),
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def induction_emergence_figure(
    scores: xr.Dataset, threshold: float = THRESHOLD, title: str | None = None
) -> go.Figure:
    """Across checkpoints: the strongest head per score, heads above `threshold`, and the copy losses.

    The x axis is the training step when every checkpoint has one, the checkpoint name otherwise.
    """
    names = _present(scores)
    if "checkpoint" not in scores.dims:
        raise FigureError(
            "emergence needs several checkpoints: stack induction_scores with stack_checkpoints"
        )
    steps = scores["step"].values if "step" in scores.coords else np.array([np.nan])
    use_steps = bool(np.isfinite(steps).all())
    order = np.argsort(steps) if use_steps else np.arange(scores.sizes["checkpoint"])
    scores = scores.isel(checkpoint=order)
    x = scores["step"].values if use_steps else [str(v) for v in scores["checkpoint"].values]
    fig = make_subplots(
        rows=1,
        cols=3,
        subplot_titles=("strongest head", f"heads > {threshold:g}", "loss on repeated random tokens"),
        horizontal_spacing=0.08,
    )
    palette = qualitative.Plotly
    for i, name in enumerate(names):
        values = scores[name]
        color = palette[i % len(palette)]
        best = values.max(dim=("layer", "head"), skipna=True).values
        above = (values > threshold).sum(dim=("layer", "head")).values
        for col, y in ((1, best), (2, above)):
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=y,
                    mode="lines+markers",
                    line={"color": color},
                    name=_TITLES[name],
                    legendgroup=name,
                    showlegend=col == 1,
                ),
                row=1,
                col=col,
            )
    for name, dash in (("first_copy_loss", "dot"), ("second_copy_loss", "solid")):
        if name in scores:
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=scores[name].values,
                    mode="lines+markers",
                    line={"color": "#444444", "dash": dash},
                    name=name.replace("_", " "),
                ),
                row=1,
                col=3,
            )
    axis = "training step" if use_steps else "checkpoint"
    fig.update_xaxes(title_text=axis)
    fig.update_yaxes(title_text="score", range=[0, 1], row=1, col=1)
    fig.update_yaxes(title_text="heads", row=1, col=2)
    fig.update_yaxes(title_text="loss (nats)", row=1, col=3)
    fig.update_layout(
        title=title if title is not None else "Emergence of induction and previous-frame heads over training",
        template="plotly_white",
        legend={"orientation": "h", "y": -0.25},
    )
    return fig
