"""Plot of frame-wise loss redundancy (Toto appendix A.3, Fig. 10), with trivial predictors beside the model.

Takes the Dataset of `toto_lens.analysis.redundancy.redundancy` and returns one plotly Figure: per frame,
the model's mean loss with the spread over clips as a band and the copy / unigram / bigram baselines as
lines; per position, the same curves token by token (the paper's Fig. 10 is this lower panel), with the
frames' boundaries drawn and numbered. The model's line and the baselines are means over the same
evaluation clips (the baselines are fitted on the others), and the model is drawn last, on top.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import xarray as xr
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from toto_lens.figures import FigureError

_BASELINES = ("copy", "unigram", "bigram")
_COLORS = {"model": qualitative.Plotly[0], "copy": qualitative.Plotly[1], "unigram": "#7f7f7f"}
_COLORS["bigram"] = qualitative.Plotly[2]
_DASH = {"copy": "dash", "unigram": "dot", "bigram": "dashdot"}
# Frame boundaries are drawn only while they stay readable.
MAX_BOUNDARIES = 32


def _band(result: xr.Dataset, prefix: str) -> tuple[np.ndarray, np.ndarray, str]:
    """Lower and upper edge of the spread band: the interquartile range if present, else mean ± std."""
    q = result.get(f"{prefix}_loss_quantile")
    if q is not None and {0.25, 0.75} <= {float(v) for v in result["quantile"].values}:
        return q.sel(quantile=0.25).values, q.sel(quantile=0.75).values, "clips, 25-75%"
    mean, std = result[f"{prefix}_loss"].values, result[f"{prefix}_loss_std"].values
    return mean - std, mean + std, "clips, mean ± std"


def _add_model(fig: go.Figure, result: xr.Dataset, prefix: str, x: np.ndarray, row: int) -> None:
    low, high, label = _band(result, prefix)
    keep = np.isfinite(result[f"{prefix}_loss"].values)
    clips = result.attrs.get("clips")
    fig.add_trace(
        go.Scatter(
            x=np.concatenate([x[keep], x[keep][::-1]]),
            y=np.concatenate([high[keep], low[keep][::-1]]),
            mode="lines",  # no markers on the band's outline
            fill="toself",
            fillcolor="rgba(99,110,250,0.2)",
            line={"width": 0},
            hoverinfo="skip",
            name=f"model spread ({label.replace('clips, ', '')} of {clips or 'all'} clips)",
            legendgroup="band",
            showlegend=row == 1,
        ),
        row=row,
        col=1,
    )
    # The line: the model's mean over the evaluation clips, the very tokens the baselines are scored on.
    predicted = result[f"{prefix}_predictor_loss"]
    same = "model" in predicted["predictor"].values and np.isfinite(predicted.sel(predictor="model")).any()
    y = predicted.sel(predictor="model").values if same else result[f"{prefix}_loss"].values
    keep = np.isfinite(y)
    n_eval = result.attrs.get("eval_clips")
    fig.add_trace(
        go.Scatter(
            x=x[keep],
            y=y[keep],
            mode="lines+markers" if prefix == "frame" else "lines",
            line={"color": _COLORS["model"], "width": 3 if prefix == "frame" else 1.8},
            name=f"model ({n_eval} evaluation clips)" if same and n_eval else "model",
            legendgroup="model",
            showlegend=row == 1,
            hovertemplate=f"{prefix} %{{x}}<br>model %{{y:.3f}} nats<extra></extra>",
        ),
        row=row,
        col=1,
    )


def _add_baselines(fig: go.Figure, result: xr.Dataset, prefix: str, x: np.ndarray, row: int) -> None:
    values = result[f"{prefix}_predictor_loss"]
    accuracy = result.get(f"{prefix}_copy_accuracy")
    for name in _BASELINES:
        if name not in values["predictor"].values:
            continue
        y = values.sel(predictor=name).values
        keep = np.isfinite(y)
        if not keep.any():
            continue
        extra = {}
        if name == "copy" and accuracy is not None:
            extra = {"customdata": accuracy.values[keep]}
            hover = (
                f"{prefix} %{{x}}<br>copy %{{y:.3f}} nats<br>copy accuracy %{{customdata:.1%}}<extra></extra>"
            )
        else:
            hover = f"{prefix} %{{x}}<br>{name} %{{y:.3f}} nats<extra></extra>"
        fig.add_trace(
            go.Scatter(
                x=x[keep],
                y=y[keep],
                mode="lines",
                line={"color": _COLORS[name], "dash": _DASH[name], "width": 1.5},
                name=_baseline_name(name, result.attrs),
                legendgroup=name,
                showlegend=row == 1,
                hovertemplate=hover,
                **extra,
            ),
            row=row,
            col=1,
        )


def _baseline_name(name: str, attrs: dict) -> str:
    fit, n_fit = str(attrs.get("baseline_fit", "")), attrs.get("fit_clips")
    if "held out" in fit and n_fit:
        return f"{name} (fitted on {n_fit} other clips)"
    return f"{name} (fitted in-sample)" if fit else name


def _frame_labels(fig: go.Figure, frames: np.ndarray, positions: np.ndarray, pos_frame: np.ndarray) -> None:
    """Dotted lines where each frame starts in the position panel, and the frame's number above it."""
    for f in frames:
        where = positions[pos_frame == f]
        if where.size == 0:
            continue
        if f != frames[0]:
            fig.add_vline(
                x=where[0] - 0.5, line={"color": "#999999", "width": 1, "dash": "dot"}, row=2, col=1
            )
        fig.add_annotation(
            x=float(where.mean()), y=1.0, xref="x2", yref="y2 domain", yanchor="bottom", showarrow=False,
            text=f"f{f}" if len(frames) > 12 else f"frame {f}", font={"size": 10, "color": "#555"},
        )  # fmt: skip


def redundancy_figure(result: xr.Dataset, title: str | None = None) -> go.Figure:
    """Mean loss per frame (top) and per position (bottom): the model with its spread, and the baselines."""
    needed = ("frame_loss", "position_loss", "frame_predictor_loss", "position_predictor_loss")
    if not isinstance(result, xr.Dataset) or any(v not in result for v in needed):
        raise FigureError(
            "expected a redundancy() Dataset (with frame_loss, position_loss and predictor losses)"
        )
    fig = make_subplots(
        rows=2,
        cols=1,
        subplot_titles=("mean loss per frame", "mean loss per token position (cf. Toto Fig. 10)"),
        vertical_spacing=0.14,
    )
    frames = result["frame"].values
    positions = result["position"].values
    for prefix, x, row in (("frame", frames, 1), ("position", positions, 2)):
        _add_baselines(fig, result, prefix, x, row)
        _add_model(fig, result, prefix, x, row)  # last: drawn on top of the baselines
    if len(frames) <= MAX_BOUNDARIES:
        fig.layout.annotations[1].update(yshift=16)  # the panel's title, above the frame numbers
        _frame_labels(fig, frames, positions, result["pos_frame"].values)
    fig.update_xaxes(title_text="frame", dtick=1 if len(frames) <= 32 else None, row=1, col=1)
    fig.update_xaxes(title_text="position in the sequence (f0, f1, …: frames)", row=2, col=1)
    fig.update_yaxes(title_text="loss (nats)", row=1, col=1)
    fig.update_yaxes(title_text="loss (nats)", row=2, col=1)
    ratio = result.attrs.get("first_to_later_ratio")
    subtitle = (
        f": first frame / later frames = {ratio:.2f}"
        if isinstance(ratio, float) and np.isfinite(ratio)
        else ""
    )
    fig.update_layout(
        title=title if title is not None else f"Frame-wise loss redundancy{subtitle}",
        template="plotly_white",
        height=800,
        legend={"orientation": "h", "y": -0.12},
        hovermode="closest",
    )
    return fig
