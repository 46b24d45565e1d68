"""Layer probing curves (Toto appendix Fig. 9): val score against depth, one panel per task.

Takes the Dataset of `toto_lens.analysis.probing.probe_layers` (or of `studies.probing` with several
checkpoints stacked along `checkpoint`) and returns a plotly Figure. The x axis is `depth` (layer /
number of blocks), so that models of different depth share a plot, as PROTOCOLS.md asks; the ticks and
the hover also give the layer number. Each probe is a line of the seed-mean val score with a ±1 std band
(sample std over seeds; no band with one seed); each checkpoint its own line style (the first solid,
an untrained baseline dashed; more checkpoints than line styles, shades of one colour from pale to
full in their order), and chance (majority class, 0 for R²) a grey dashed line. Panel titles
say how many clips each probe was trained and scored on.
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
_DASHES = ("solid", "dash", "dot", "dashdot")


def _shade(color: str, strength: float) -> str:
    """`color` (#rrggbb) mixed with white: strength 1 is the colour itself, 0 is white."""
    r, g, b = (round(255 - strength * (255 - int(color[i : i + 2], 16))) for i in (1, 3, 5))
    return f"#{r:02x}{g:02x}{b:02x}"


def _band_color(color: str, alpha: float = 0.18) -> str:
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _grid(n: int) -> tuple[int, int]:
    """(rows, columns) for n panels, at most MAX_COLUMNS wide, with as few empty cells as possible."""
    rows = -(-n // MAX_COLUMNS)
    return rows, -(-n // rows)


def _clips(result: xr.Dataset, task: str, probes: list[str]) -> str:
    """`280 train / 120 val clips`, per probe when the probes differ (attention probes need token acts)."""
    if "n_train" not in result or "n_val" not in result:
        return ""
    counts = {}
    for probe in probes:
        tr = result["n_train"].sel(task=task, probe=probe).values
        va = result["n_val"].sel(task=task, probe=probe).values
        if np.nanmax(tr, initial=0) > 0:
            counts[probe] = f"{int(np.nanmax(tr))} train / {int(np.nanmax(va))} val clips"
    if len(set(counts.values())) == 1:
        return next(iter(counts.values()))
    return ", ".join(f"{p} {c.replace(' clips', '')}" for p, c in counts.items()) + " clips"


def probing_figure(result: xr.Dataset, title: str | None = None) -> go.Figure:
    """One panel per task: seed-mean val score per layer for each probe (and checkpoint), ±std band,
    chance dashed; a panel only for tasks with scores."""
    from toto_lens.analysis import AnalysisError
    from toto_lens.analysis.probing import summarise

    try:
        summary = summarise(result)
    except AnalysisError as e:
        raise FigureError(str(e)) from None
    stacked = "checkpoint" in result.dims
    ckpts = [str(c) for c in result["checkpoint"].values] if stacked else [None]
    probes = [str(p) for p in result["probe"].values]
    all_tasks = [str(t) for t in result["task"].values]
    metrics = dict(
        zip(all_tasks, [str(m) for m in result["metric"].values], strict=True)
        if "metric" in result.coords
        else ((t, "score") for t in all_tasks)
    )
    tasks = [t for t in all_tasks if np.isfinite(summary["val_mean"].sel(task=t).values).any()]
    if not tasks:
        raise FigureError("this probing result holds no scores (every probe is NaN for every task)")
    nrows, cols = _grid(len(tasks))
    titles = []
    for t in tasks:
        clips = _clips(result, t, probes)
        titles.append(
            f"{t} ({_METRIC.get(metrics[t], metrics[t])})" + (f"<br><sup>{clips}</sup>" if clips else "")
        )
    fig = make_subplots(
        rows=nrows,
        cols=cols,
        subplot_titles=titles,
        horizontal_spacing=0.08,
        vertical_spacing=0.2 if nrows > 1 else 0.1,
    )
    layers = result["layer"].values
    palette = qualitative.Plotly
    # More checkpoints than line styles (snapshots over training, say): solid lines, each checkpoint a
    # shade of its probe's colour, pale (the first) to full (the last), so that the order reads as time.
    series = len(ckpts) > len(_DASHES)
    shown: set[str] = set()
    for i, task in enumerate(tasks):
        metric = metrics[task]
        row, col = i // cols + 1, i % cols + 1
        for k, ckpt in enumerate(ckpts):
            one = summary.sel(checkpoint=ckpt) if stacked else summary
            depth = _depth(result, ckpt)
            for j, probe in enumerate(probes):
                mean = one["val_mean"].sel(task=task, probe=probe).values
                std = one["val_std"].sel(task=task, probe=probe).values
                keep = np.isfinite(mean)
                if not keep.any():
                    continue  # the probe does not apply to this task (or this model lacks the layers)
                x, mean, std, lay = depth[keep], mean[keep], std[keep], layers[keep]
                color = palette[j % len(palette)]
                if series:
                    color = _shade(color, 0.2 + 0.8 * k / (len(ckpts) - 1))
                first = k == 0 and not series
                name = probe if not stacked else f"{probe} · {ckpt}"
                if np.isfinite(std).any():
                    low, high = mean - np.nan_to_num(std), mean + np.nan_to_num(std)
                    fig.add_trace(
                        go.Scatter(
                            x=np.concatenate([x, x[::-1]]),
                            y=np.concatenate([high, low[::-1]]),
                            mode="lines",  # no markers on the band's outline
                            fill="toself",
                            fillcolor=_band_color(color, 0.18 if first else 0.08),
                            line={"width": 0},
                            hoverinfo="skip",
                            showlegend=False,
                            legendgroup=name,
                        ),
                        row=row,
                        col=col,
                    )
                fig.add_trace(
                    go.Scatter(
                        x=x,
                        y=mean,
                        customdata=np.stack([lay, np.nan_to_num(std)], axis=-1),
                        mode="lines+markers",
                        name=name,
                        legendgroup=name,
                        showlegend=name not in shown,
                        line={
                            "color": color,
                            "dash": "solid" if series else _DASHES[k],
                            "width": 2.5 if first else 1.8,
                        },
                        marker={
                            "color": color,
                            "symbol": "circle" if first or series else "circle-open",
                            "size": 7,
                        },
                        hovertemplate=(
                            f"{task} · {probe}{f' · {ckpt}' if stacked else ''}<br>"
                            "layer %{customdata[0]:.0f} (depth %{x:.2f})"
                            f"<br>val {_METRIC.get(metric, metric)} %{{y:.3f}} ± %{{customdata[1]:.3f}}<extra></extra>"
                        ),
                    ),
                    row=row,
                    col=col,
                )
                shown.add(name)
        if "chance" in result.coords:
            fig.add_hline(
                y=float(np.nanmax(result["chance"].sel(task=task).values)),
                line={"dash": "dash", "color": "gray", "width": 1},
                annotation_text="chance",
                annotation_position="bottom right",
                row=row,
                col=col,
            )
        fig.update_yaxes(title_text=f"val {_METRIC.get(metric, metric)}", row=row, col=col)
        fig.update_xaxes(title_text="layer (depth = layer / blocks)", row=row, col=col, **_ticks(result))
    for i in range(len(tasks), nrows * cols):  # cells past the last task: no empty axes
        fig.update_xaxes(visible=False, row=i // cols + 1, col=i % cols + 1)
        fig.update_yaxes(visible=False, row=i // cols + 1, col=i % cols + 1)
    seeds = result.sizes.get("seed", 1)
    data = result.attrs.get("dataset", "")
    names = ", ".join(c for c in ckpts if c) if stacked else result.attrs.get("checkpoint", "")
    of = f"{f' of {names}' if names else ''}{f' on {data}' if data else ''}"
    fig.update_layout(
        title=title
        if title is not None
        else f"Layer probing{of}: val score, mean ± std over {seeds} seed(s), cf. Toto Fig. 9",
        template="plotly_white",
        hovermode="closest",
        legend={"title": {"text": "probe · checkpoint" if stacked else "probe"}},
        height=max(420, 400 * nrows),
    )
    return fig


def _depth(result: xr.Dataset, ckpt: str | None) -> np.ndarray:
    """Fraction of depth per layer (of one checkpoint when the checkpoints differ in depth)."""
    if "depth" not in result.coords:
        return result["layer"].values.astype(float)
    depth = result["depth"]
    if ckpt is not None and "checkpoint" in depth.dims:
        depth = depth.sel(checkpoint=ckpt)
    return np.asarray(depth.values, dtype=float)


def _ticks(result: xr.Dataset) -> dict:
    """Ticks at each probed layer, labelled `layer` over `depth`, when every checkpoint shares one depth."""
    if "depth" not in result.coords or "checkpoint" in result["depth"].dims or result.sizes["layer"] > 24:
        return {}
    depth = np.asarray(result["depth"].values, dtype=float)
    text = [f"{int(l)}<br><sub>{d:.2f}</sub>" for l, d in zip(result["layer"].values, depth, strict=True)]  # noqa: E741
    return {"tickmode": "array", "tickvals": depth, "ticktext": text}
