"""Plots of learning-rate transfer (appendix Fig. 11) and of validation loss against compute (Fig. 14).

`lr_sweep_figure` takes the Dataset of `toto_lens.analysis.scaling.lr_transfer` (through
`studies.lr_sweep`): validation loss against log2 of the learning rate, one line per width (one colour
per width in every panel), μP solid in the first panel and the standard parametrization dashed in the
second, the best point of each width marked with a star. `compute_figure` takes the Dataset of
`studies.scaling`: validation loss against training compute on log–log axes, one line per model over its
evaluations, the compute-efficient frontier circled and the fitted power law dashed, its formula in the
legend.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import xarray as xr
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from toto_lens.figures import FigureError
from toto_lens.io import json_attr

_NAMES = {"mup": "μP", "standard": "standard parametrization"}
_DASH = {"mup": "solid", "standard": "dash"}


def _color(i: int) -> str:
    return qualitative.Plotly[i % len(qualitative.Plotly)]


def lr_sweep_figure(result: xr.Dataset) -> go.Figure:
    """val_loss against log2 lr per width; one panel per parametrization, the best lr of each width starred."""
    if not isinstance(result, xr.Dataset) or not {"val_loss", "best_lr"} <= set(result.data_vars):
        raise FigureError("expected the Dataset of lr_transfer (val_loss and best_lr over width and lr)")
    params = [str(p) for p in result["parametrization"].values]
    titles = []
    for p in params:
        steps = float(result["spread_steps"].sel(parametrization=p))
        spread = "no run converged" if not np.isfinite(steps) else f"best lr spread {steps:g} grid steps"
        titles.append(f"{_NAMES.get(p, p)}: {spread}")
    fig = make_subplots(rows=1, cols=len(params), subplot_titles=titles, shared_yaxes=True)
    log_lr = np.log2(np.asarray(result["lr"].values, dtype=float))
    for col, p in enumerate(params, start=1):
        for i, width in enumerate(result["width"].values):
            sel = result.sel(parametrization=p, width=width)
            y = np.asarray(sel["val_loss"].values, dtype=float)
            keep = np.isfinite(y)
            name = f"width {int(width)}"
            fig.add_trace(
                go.Scatter(
                    x=log_lr[keep], y=y[keep], mode="lines+markers", name=name, legendgroup=name,
                    showlegend=col == 1, line={"color": _color(i), "dash": _DASH.get(p, "solid")},
                    hovertemplate=f"{_NAMES.get(p, p)}, {name}<br>log2 lr %{{x:.2f}}<br>val_loss %{{y:.4f}}"
                    "<extra></extra>",
                ),
                row=1, col=col,
            )  # fmt: skip
            best = float(sel["best_lr"])
            if np.isfinite(best):
                fig.add_trace(
                    go.Scatter(
                        x=[np.log2(best)], y=[float(sel["best_val_loss"])], mode="markers",
                        marker={"symbol": "star", "size": 14, "color": _color(i), "line": {"width": 1}},
                        name="best lr of a width", legendgroup="best",
                        showlegend=col == 1 and i == 0, hovertemplate=f"{name}: best lr {best:g}<extra></extra>",
                    ),
                    row=1, col=col,
                )  # fmt: skip
        fig.update_xaxes(title_text="lr (log2)", dtick=1, row=1, col=col)
    fig.update_yaxes(title_text="val_loss (nats)", row=1, col=1)
    options = json_attr(result.attrs, "options") or {}
    after = f" after {options['steps']} steps" if options.get("steps") else ""
    fig.update_layout(
        title=f"Learning-rate transfer across widths{after} (appendix Fig. 11)",
        template="plotly_white",
        height=460,
        width=max(560, 460 * len(params)),
        legend={"title": {"text": "μP solid, standard dashed"}},
    )
    return fig


def compute_figure(result: xr.Dataset) -> go.Figure:
    """val_loss against compute (log–log), one line per model, the frontier circled, the power law dashed."""
    if not isinstance(result, xr.Dataset) or not {"val_loss", "compute"} <= set(result.data_vars):
        raise FigureError(
            "expected the Dataset of studies.scaling (val_loss and compute over model and eval)"
        )
    fig = go.Figure()
    for i, model in enumerate(result["model"].values):
        sel = result.sel(model=model)
        c, y = (np.asarray(sel[k].values, dtype=float) for k in ("compute", "val_loss"))
        keep = np.isfinite(c) & np.isfinite(y) & (c > 0)
        steps = np.asarray(sel["step"].values, dtype=float)[keep]
        fig.add_trace(
            go.Scatter(
                x=c[keep], y=y[keep], mode="lines+markers", name=str(model), line={"color": _color(i)},
                customdata=steps, hovertemplate=f"{model}<br>step %{{customdata:.0f}}<br>compute %{{x:.3g}} FLOPs"
                "<br>val_loss %{y:.4f}<extra></extra>",
            )
        )  # fmt: skip
    on = np.asarray(result["on_frontier"].values, dtype=bool) if "on_frontier" in result else None
    if on is not None and on.any():
        c, y = (np.asarray(result[k].values, dtype=float)[on] for k in ("compute", "val_loss"))
        order = np.argsort(c)
        fig.add_trace(
            go.Scatter(
                x=c[order], y=y[order], mode="markers", name="compute-efficient frontier",
                marker={"symbol": "circle-open", "size": 14, "color": "black", "line": {"width": 2}},
                hoverinfo="skip",
            )
        )  # fmt: skip
    a, alpha, r2 = (float(result.attrs.get(k, np.nan)) for k in ("a", "alpha", "r2"))
    if np.isfinite(a) and np.isfinite(alpha) and on is not None and on.any():
        c = np.asarray(result["compute"].values, dtype=float)
        c = c[np.isfinite(c) & (c > 0)]
        xs = np.geomspace(c.min(), c.max(), 64)
        fig.add_trace(
            go.Scatter(
                x=xs, y=a * xs ** (-alpha), mode="lines", line={"color": "black", "dash": "dash"},
                name=f"fit: L = {a:.3g}·C^−{alpha:.3g}, r² = {r2:.3f}",
            )
        )  # fmt: skip
    fig.update_xaxes(type="log", title_text="compute (FLOPs, 6·N·D)")
    fig.update_yaxes(type="log", title_text="val_loss (nats)")
    fig.update_layout(
        title="Validation loss against training compute (appendix Fig. 14)",
        template="plotly_white",
        height=480,
        width=760,
    )
    return fig
