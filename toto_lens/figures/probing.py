"""Layer probing curves (Toto appendix Fig. 9): val score against fraction of depth, one panel per task.

Takes the Dataset of `toto_lens.analysis.probing.probe_layers` and returns a plotly Figure. The x axis is
`depth` (layer / number of blocks), so that models of different depth share a plot, as PROTOCOLS.md asks;
the layer index is in the hover. Each probe is a line of the seed-mean val score with a ±1 std band
(sample std over seeds; no band with one seed), and chance (majority class, 0 for R²) a dashed line.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import xarray as xr
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from toto_lens.figures import FigureError

MAX_COLUMNS = 3
_METRIC = {"accuracy": "accuracy", "r2": "R²"}


def _band_color(color: str, alpha: float = 0.18) -> str:
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def probing_figure(result: xr.Dataset, title: str | None = None) -> go.Figure:
    """One panel per task: seed-mean val score per layer for each probe, ±std band, chance dashed."""
    from toto_lens.analysis import AnalysisError
    from toto_lens.analysis.probing import summarise

    try:
        summary = summarise(result)
    except AnalysisError as e:
        raise FigureError(str(e)) from None
    tasks = [str(t) for t in result["task"].values]
    probes = [str(p) for p in result["probe"].values]
    metrics = (
        [str(m) for m in result["metric"].values] if "metric" in result.coords else ["score"] * len(tasks)
    )
    cols = min(MAX_COLUMNS, len(tasks))
    nrows = -(-len(tasks) // cols)
    fig = make_subplots(
        rows=nrows,
        cols=cols,
        subplot_titles=[f"{t} ({_METRIC.get(m, m)})" for t, m in zip(tasks, metrics, strict=True)],
        horizontal_spacing=0.08,
        vertical_spacing=0.18 if nrows > 1 else 0.1,
    )
    layers = result["layer"].values
    depth = result["depth"].values if "depth" in result.coords else layers.astype(float)
    palette = qualitative.Plotly
    shown: set[str] = set()
    for i, (task, metric) in enumerate(zip(tasks, metrics, strict=True)):
        row, col = i // cols + 1, i % cols + 1
        for j, probe in enumerate(probes):
            mean = summary["val_mean"].sel(task=task, probe=probe).values
            std = summary["val_std"].sel(task=task, probe=probe).values
            if not np.isfinite(mean).any():
                continue  # the probe does not apply to this task
            color = palette[j % len(palette)]
            if np.isfinite(std).any():
                low, high = mean - np.nan_to_num(std), mean + np.nan_to_num(std)
                fig.add_trace(
                    go.Scatter(
                        x=np.concatenate([depth, depth[::-1]]),
                        y=np.concatenate([high, low[::-1]]),
                        mode="lines",  # no markers on the band's outline
                        fill="toself",
                        fillcolor=_band_color(color),
                        line={"width": 0},
                        hoverinfo="skip",
                        showlegend=False,
                        legendgroup=probe,
                    ),
                    row=row,
                    col=col,
                )
            fig.add_trace(
                go.Scatter(
                    x=depth,
                    y=mean,
                    customdata=np.stack([layers, np.nan_to_num(std)], axis=-1),
                    mode="lines+markers",
                    name=probe,
                    legendgroup=probe,
                    showlegend=probe not in shown,
                    line={"color": color},
                    marker={"color": color},
                    hovertemplate=(
                        f"{task} · {probe}<br>layer %{{customdata[0]:.0f}} (depth %{{x:.2f}})"
                        f"<br>val {_METRIC.get(metric, metric)} %{{y:.3f}} ± %{{customdata[1]:.3f}}<extra></extra>"
                    ),
                ),
                row=row,
                col=col,
            )
            shown.add(probe)
        if "chance" in result.coords:
            fig.add_hline(
                y=float(result["chance"].sel(task=task)),
                line={"dash": "dash", "color": "gray", "width": 1},
                annotation_text="chance",
                annotation_position="bottom right",
                row=row,
                col=col,
            )
        fig.update_yaxes(title_text=_METRIC.get(metric, metric), row=row, col=col)
        fig.update_xaxes(title_text="depth (layer / blocks)", row=row, col=col)
    if not shown:
        raise FigureError("this probing result holds no scores (every probe is NaN for every task)")
    seeds = result.sizes.get("seed", 1)
    name, data = result.attrs.get("checkpoint", ""), result.attrs.get("dataset", "")
    of = f"{f' of {name}' if name else ''}{f' on {data}' if data else ''}"
    fig.update_layout(
        title=title
        if title is not None
        else f"Layer probing{of}: val score, mean ± std over {seeds} seed(s), cf. Toto Fig. 9",
        template="plotly_white",
        hovermode="closest",
        legend={"title": {"text": "probe"}},
        height=380 * nrows,
    )
    return fig
