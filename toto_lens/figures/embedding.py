"""UMAP of layer representations: one 2-D scatter per layer, points coloured by a label's names."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
    "#17becf",
)  # fmt: skip


def label_names(result: Any, label: str) -> np.ndarray:
    """Each point's label as text: its flag meaning where the label has them, else the value itself."""
    coord = result[label]
    words = str(coord.attrs.get("flag_meanings", "")).split()
    if not words:
        return np.asarray(coord.values).astype(str)
    values = np.atleast_1d(coord.attrs.get("flag_values", list(range(len(words)))))
    table = {int(v): w for v, w in zip(values, words, strict=True)}
    return np.array([table.get(int(c), "n/a") for c in np.asarray(coord.values)], dtype=str)


def embedding_figure(result: Any, label: str | None = None, cols: int = 3) -> Any:
    """Small multiples: the UMAP of each layer, coloured by `label` (the study's by default), titled with
    its trustworthiness and the label's kNN accuracy (shuffled-label control in brackets)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    label = label or result.attrs.get("label")
    layers = [int(v) for v in result["layer"].values]
    cols = min(cols, len(layers))
    rows = math.ceil(len(layers) / cols)
    titles = []
    for layer in layers:
        one = result.sel(layer=layer)
        text = f"layer {layer}: trust {float(one['trustworthiness']):.2f}"
        if "separation" in one:
            text += f", kNN {float(one['separation']):.0%} ({float(one['separation_control']):.0%})"
        titles.append(text)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.04,
                        vertical_spacing=0.1)  # fmt: skip
    names = label_names(result, label) if label else np.full(result.sizes["point"], "points")
    groups = list(dict.fromkeys(sorted(names)))
    for i, layer in enumerate(layers):
        xy = result["embedding"].sel(layer=layer).values
        for g, name in enumerate(groups):
            mask = names == name
            fig.add_trace(
                go.Scattergl(
                    x=xy[mask, 0], y=xy[mask, 1], mode="markers", name=str(name), legendgroup=str(name),
                    showlegend=i == 0, marker={"size": 4, "color": PALETTE[g % len(PALETTE)]},
                ),
                row=i // cols + 1, col=i % cols + 1,
            )  # fmt: skip
    fig.update_xaxes(showticklabels=False, title_text="UMAP 1")
    fig.update_yaxes(showticklabels=False, title_text="UMAP 2")
    a = result.attrs
    ckpt = a.get("checkpoint", "")
    fig.update_layout(
        title=(f"UMAP of each layer of {ckpt} ({a.get('points')} points, {a.get('source', '')}), "
               f"coloured by {label}; kNN accuracy (shuffled labels)").replace(" of  (", " ("),
        height=340 * rows, legend={"title": label, "itemsizing": "constant"},
    )  # fmt: skip
    return fig
