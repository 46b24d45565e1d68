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

MAX_TEXT_COLUMNS = 48
_TITLES = {
    "prefix_matching": "induction (random tokens)",
    "prefix_matching_excess": "induction (random tokens) − no-repeat control",
    "repeated_clip": "induction (a clip played twice)",
    "frame_induction": "looks where the next token was a frame ago",
    "previous_frame": "looks at the same place a frame ago",
    "previous_row": "looks at the row above",
    "induction_detector": "induction detector",
}
# The same on two lines, so that six panels side by side keep their titles apart.
_PANEL = {
    "prefix_matching": "induction<br>(random tokens)",
    "prefix_matching_excess": "induction (random<br>tokens) − control",
    "repeated_clip": "induction<br>(a clip played twice)",
    "frame_induction": "looks where the next<br>token was a frame ago",
    "previous_frame": "looks at the same<br>place a frame ago",
    "previous_row": "looks at<br>the row above",
    "induction_detector": "induction<br>detector",
}
# What each score measures, under its panel title: the plain words a reader of the appendix needs.
_MEANING = {
    "prefix_matching": "random tokens repeated: attention from a token to what followed it the first time",
    "prefix_matching_excess": "that attention on [start; r; r] minus the same on [start; r; r′] "
    "(nothing repeated): a head that reads a fixed offset back scores on both",
    "repeated_clip": "a clip played twice: attention to the token after the same token's first showing",
    "frame_induction": "attention from the token before (f, r, c) to (f − 1, r, c)",
    "previous_frame": "attention from (f, r, c) to (f − 1, r, c)",
    "previous_row": "attention from (f, r, c) to (f, r − 1, c)",
    "induction_detector": "share of attention on the token after an earlier copy of the current one",
}


def _present(scores: xr.Dataset) -> list[str]:
    """The scores drawn: prefix matching as its controlled score (raw − control) when the result has it."""
    if not isinstance(scores, xr.Dataset) or "prefix_matching" not in scores:
        raise FigureError("expected an induction_scores Dataset (with a prefix_matching variable)")
    swap = {"prefix_matching": "prefix_matching_excess"} if "prefix_matching_excess" in scores else {}
    names = [swap.get(k, k) for k in SCORES]
    return [k for k in names if k in scores and np.isfinite(scores[k].values).any()]


def _hover_extra(one: xr.Dataset, name: str) -> tuple[np.ndarray | None, str]:
    """For the controlled panel, the raw and control scores of each head (customdata) and their hover."""
    if name != "prefix_matching_excess" or "prefix_matching_control" not in one:
        return None, ""
    raw = one["prefix_matching"].transpose("layer", "head").values
    control = one["prefix_matching_control"].transpose("layer", "head").values
    n = one.attrs.get("n")
    at = f" (n = {n})" if n is not None else ""
    return np.stack([raw, control], axis=-1), (
        f"<br>raw{at}: %{{customdata[0]:.3f}}<br>no-repeat control: %{{customdata[1]:.3f}}"
    )


def colour_top(values: np.ndarray, threshold: float) -> float:
    """The top of the colour scale: the largest score (rounded up to 0.05), and at least the threshold,
    so that the threshold always sits on the colour bar and weak heads are not washed out by a 0-1 scale."""
    top = float(np.nanmax(values)) if np.isfinite(values).any() else threshold
    return float(min(1.0, np.ceil(max(top, threshold * 1.05) * 20) / 20))


def induction_heatmap_figure(
    scores: xr.Dataset, threshold: float = THRESHOLD, checkpoint: str | None = None, title: str | None = None
) -> go.Figure:
    """Layer × head heatmaps, one column per score and one row per checkpoint (trained beside untrained),
    each cell's value written in it and in the hover; heads above `threshold` outlined, and the threshold
    marked on a colour bar fitted to the scores. `checkpoint` shows only that one of a stacked Dataset."""
    names = _present(scores)
    if "checkpoint" in scores.dims:
        have = [str(v) for v in scores["checkpoint"].values]
        labels = have if checkpoint is None else [checkpoint]
        if checkpoint is not None and checkpoint not in have:
            raise FigureError(f"no checkpoint {checkpoint!r}; have {have}")
        panels = [
            (label, scores.sel(checkpoint=label).dropna("layer", how="all", subset=["prefix_matching"]))
            for label in labels
        ]
    else:
        panels = [(scores.attrs.get("checkpoint"), scores)]
    top = colour_top(np.concatenate([p[k].values.ravel() for _, p in panels for k in names]), threshold)
    n_rows, n_layers = len(panels), max(p.sizes["layer"] for _, p in panels)
    # Values in the cells while they fit (a laptop screen holds about 48 columns); always in the hover.
    in_cells = max(p.sizes["head"] for _, p in panels) * len(names) <= MAX_TEXT_COLUMNS
    titles = [f"<b>{_PANEL[k]}</b>" if r == 0 else "" for r in range(n_rows) for k in names]
    fig = make_subplots(
        rows=n_rows,
        cols=len(names),
        subplot_titles=titles,
        horizontal_spacing=0.025,
        vertical_spacing=0.12 if n_rows > 1 else 0.1,
    )
    for r, (label, one) in enumerate(panels, start=1):
        for i, name in enumerate(names, start=1):
            z = one[name].transpose("layer", "head")
            layers, heads = z["layer"].values, z["head"].values
            custom, extra = _hover_extra(one, name)
            fig.add_trace(
                go.Heatmap(
                    z=z.values,
                    x=heads,
                    y=layers,
                    coloraxis="coloraxis",
                    text=np.vectorize(lambda v: "" if not np.isfinite(v) else f"{v:.2f}")(z.values),
                    texttemplate="%{text}" if in_cells else None,
                    textfont={"size": 11},
                    xgap=1,
                    ygap=1,
                    name=f"{_TITLES[name]} · {label}" if label else _TITLES[name],
                    customdata=custom,
                    hovertemplate=(
                        f"{label + '<br>' if label else ''}layer %{{y}} head %{{x}}<br>"
                        f"{_TITLES[name]}: %{{z:.3f}}{extra}<br><i>{_MEANING[name]}</i><extra></extra>"
                    ),
                ),
                row=r,
                col=i,
            )
            li, hi = np.nonzero(np.nan_to_num(z.values) > threshold)
            fig.add_trace(
                go.Scatter(
                    x=heads[hi],
                    y=layers[li],
                    mode="markers",
                    marker={"symbol": "square-open", "size": 30, "color": "#e4572e", "line": {"width": 3}},
                    name=f"head above {threshold:g}",
                    legendgroup="above",
                    showlegend=bool(li.size)
                    and not any(t.legendgroup == "above" and t.showlegend for t in fig.data),
                    hoverinfo="skip",
                ),
                row=r,
                col=i,
            )
            fig.update_xaxes(title_text="head" if r == n_rows else None, dtick=1, row=r, col=i)
            fig.update_yaxes(dtick=1, autorange="reversed", showticklabels=i == 1, row=r, col=i)
        step = one.attrs.get("step") if "step" not in one.coords else one["step"].values.item()
        said = f"{label}" + (
            f" (step {step:g})" if isinstance(step, int | float) and np.isfinite(step) else ""
        )
        fig.update_yaxes(title_text=f"<b>{said}</b><br>layer" if label else "layer", row=r, col=1)
    ticks = sorted({0.0, threshold, top})
    fig.update_layout(
        coloraxis={
            "colorscale": "Viridis",
            "cmin": 0.0,
            "cmax": top,
            "colorbar": {
                "title": {"text": "score"},
                "tickvals": ticks,
                "ticktext": [f"{v:g} threshold" if v == threshold else f"{v:g}" for v in ticks],
                "len": 0.8,
            },
        },
        title=title if title is not None else _heatmap_title(panels, threshold),
        template="plotly_white",
        height=190 + 18 * len(names) + n_rows * (70 + 42 * n_layers),
        # No fixed width: the page's width is shared out, so six panels fit a laptop screen.
        legend={"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom", "yref": "container"},
        margin={"t": 130, "b": 60 + 18 * len(names)},
    )
    meaning = "<br>".join(f"<b>{_TITLES[k]}</b>: {_MEANING[k]}" for k in names)
    fig.add_annotation(
        text=meaning, xref="paper", yref="paper", x=0, y=0, yshift=-40, xanchor="left", yanchor="top",
        align="left", showarrow=False, font={"size": 11, "color": "#555"},
    )  # fmt: skip
    return fig


def _heatmap_title(panels: list, threshold: float) -> str:
    labels = [str(label) for label, _ in panels if label]
    losses = []
    for label, one in panels:
        if "first_copy_loss" in one and "second_copy_loss" in one:
            first, second = float(one["first_copy_loss"]), float(one["second_copy_loss"])
            losses.append(f"{label + ': ' if len(panels) > 1 else ''}{first:.2f} → {second:.2f}")
    of = f" of {' and '.join(labels)}" if labels else ""
    sub = f"score per layer and head; outlined: above {threshold:g}"
    if losses:
        sub += f"; loss on repeated random tokens, 1st → 2nd copy (nats): {'; '.join(losses)}"
    return f"Head scores{of}: which heads copy from earlier tokens<br><sup>{sub}</sup>"


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
