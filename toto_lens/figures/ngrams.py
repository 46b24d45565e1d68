"""Plots of n-gram token statistics: rank-frequency curves (Toto appendix A.9, Figs. 12-13) and a summary.

Takes the Datasets of `toto_lens.analysis.ngrams` (one tokenizer, or several stacked by
`compare_ngram_stats` along `tokenizer`) and returns plotly Figures; axis titles are the Dataset's
dimension and variable names. The paper plots 2-grams (Fig. 12) and 3-grams (Fig. 13) of 10,000 ImageNet
images on log-log axes; we do the same, one line per tokenizer.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import plotly.graph_objects as go
import xarray as xr
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from toto_lens.figures import FigureError

# Points kept per curve: log-spaced ranks lose nothing visible on a log axis, and a curve of 600k ranks
# would otherwise put ~20 MB of numbers in the HTML.
MAX_POINTS = 400
_PAPER_FIGURE = {2: "Fig. 12", 3: "Fig. 13"}


def _members(stats: xr.Dataset) -> Iterator[tuple[str, xr.Dataset, int]]:
    """(name, one tokenizer's Dataset, vocab size) for a single or a compared `ngram_stats` result."""
    if not isinstance(stats, xr.Dataset) or "frequency" not in stats:
        raise FigureError(
            "expected an ngram_stats or compare_ngram_stats Dataset (with a frequency variable)"
        )
    if "tokenizer" not in stats.dims:
        yield str(stats.attrs.get("name", "tokenizer")), stats, int(stats.attrs.get("vocab_size", 0))
        return
    for label in stats["tokenizer"].values:
        one = stats.sel(tokenizer=label)
        vocab = int(one["vocab_size"]) if "vocab_size" in one.coords else 0
        yield str(label), one, vocab


def log_spaced_ranks(length: int, points: int = MAX_POINTS) -> np.ndarray:
    """0-based indices of about `points` ranks among `length`, log-spaced, always the first and last."""
    if length <= points:
        return np.arange(length)
    ranks = np.unique(np.round(np.geomspace(1, length, points)).astype(np.int64))
    return ranks - 1


def ngram_rank_figure(stats: xr.Dataset, n: int = 2, title: str | None = None) -> go.Figure:
    """Log rank vs log relative frequency of the n-grams, one line per tokenizer (the paper's Figs. 12-13)."""
    if "n" not in stats.coords or n not in stats["n"].values:
        have = [int(v) for v in stats["n"].values] if "n" in stats.coords else []
        raise FigureError(f"no {n}-gram statistics in this Dataset; it holds n = {have}")
    fig = go.Figure()
    for name, one, _ in _members(stats):
        freq = one["frequency"].sel(n=n).values
        count = one["count"].sel(n=n).values
        kept = np.flatnonzero(np.isfinite(freq) & (freq > 0))  # NaN pads past the last distinct n-gram
        if kept.size == 0:
            continue  # this tokenizer was not counted at this n (compared Datasets are outer-joined)
        idx = kept[log_spaced_ranks(kept.size)]
        distinct = int(one["distinct"].sel(n=n))
        fig.add_trace(
            go.Scatter(
                x=one["rank"].values[idx],
                y=freq[idx],
                customdata=count[idx],
                mode="lines",
                name=f"{name} ({distinct:,} distinct {n}-grams)",
                hovertemplate=(
                    "rank %{x:,}<br>frequency %{y:.3g}<br>count %{customdata:,.0f}"
                    f"<extra>{name}</extra>"
                ),
            )
        )
    if not fig.data:
        raise FigureError(f"no tokenizer in this Dataset has {n}-gram counts")
    paper = f", cf. Toto {_PAPER_FIGURE[n]}" if n in _PAPER_FIGURE else ""
    fig.update_layout(
        title=title if title is not None else f"{n}-gram distribution of visual tokens{paper}",
        template="plotly_white",
        xaxis={"type": "log", "title": {"text": "rank"}},
        yaxis={"type": "log", "title": {"text": "frequency"}, "exponentformat": "power"},
        legend={"x": 0.99, "xanchor": "right", "y": 0.99, "bgcolor": "rgba(255,255,255,0.7)"},
        hovermode="closest",
    )
    return fig


def ngram_summary_figure(stats: xr.Dataset, title: str | None = None) -> go.Figure:
    """Grouped bars per n and tokenizer: entropy (bits) and coverage (distinct / possible, log axis)."""
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("entropy (bits)", "coverage = distinct / possible"),
        horizontal_spacing=0.12,
    )
    palette = qualitative.Plotly
    for i, (name, one, vocab) in enumerate(_members(stats)):
        ns = one["n"].values
        present = np.isfinite(one["entropy"].values)
        labels = [f"{int(v)}-gram" for v in ns[present]]
        # Dead codes as a count: a percentage of codes used rounds 130 dead of 32,768 to "100%".
        dead = int(one["dead_codes"])
        legend = f"{name} (V={vocab:,}, {dead:,} dead codes)" if vocab else name
        color = palette[i % len(palette)]
        bits = one["entropy"].values[present]
        ceiling = [int(v) * np.log2(vocab) if vocab else np.nan for v in ns[present]]
        fig.add_trace(
            go.Bar(
                x=labels,
                y=bits,
                name=legend,
                legendgroup=name,
                marker_color=color,
                customdata=ceiling,
                hovertemplate=f"{name}<br>%{{x}}: %{{y:.2f}} bits (uniform: %{{customdata:.1f}})<extra></extra>",
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Bar(
                x=labels,
                y=one["coverage"].values[present],
                name=legend,
                legendgroup=name,
                showlegend=False,
                marker_color=color,
                customdata=np.stack(
                    [one["distinct"].values[present], one["possible"].values[present]], axis=-1
                ),
                hovertemplate=(
                    f"{name}<br>%{{x}}: %{{customdata[0]:,.0f}} of %{{customdata[1]:,.0f}} possible"
                    "<br>coverage %{y:.3g}<extra></extra>"
                ),
            ),
            row=1,
            col=2,
        )
    fig.update_xaxes(title_text="n")
    fig.update_yaxes(title_text="entropy", row=1, col=1)
    fig.update_yaxes(title_text="coverage", type="log", exponentformat="power", row=1, col=2)
    fig.update_layout(
        title=title if title is not None else "n-gram entropy and coverage per tokenizer",
        template="plotly_white",
        barmode="group",
        legend={"orientation": "h", "y": -0.2},
    )
    return fig
