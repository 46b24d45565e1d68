"""Figures of label propagation: J&F over layers beside the baselines (Table 14), and predicted masks over
frames beside the truth (Fig. 7)."""

from __future__ import annotations

from typing import Any

import numpy as np

from toto_lens.figures.clips import image_rows, picture_figure, strip, tinted

BASELINE_STYLE = {
    "copy-first": ("#7f7f7f", "dash"),
    "pixels": ("#8c564b", "dot"),
    "token-oracle": ("#9467bd", "dashdot"),
}
BEST_COLOUR = "#17becf"
SCORES = (("JF", "J&F", "#1f77b4"), ("J", "J (region)", "#2ca02c"), ("F", "F (boundary)", "#d62728"))
GAP = 2


def _layers(result: Any) -> list[str]:
    return [str(m) for m in result["predictor"].values if str(m).startswith("layer-")]


def tracking_figure(result: Any) -> Any:
    """Left: J&F, J and F per layer, the baselines as horizontal lines. Right: J&F per frame for the best
    layer and the baselines (how the score decays through the clip)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from toto_lens.analysis.tracking import best_layer

    layers = _layers(result)
    numbers = [int(m.split("-", 1)[1]) for m in layers]
    fig = make_subplots(
        rows=1, cols=2, column_widths=[0.55, 0.45], horizontal_spacing=0.1,
        subplot_titles=("J&F, J and F per layer", "J&F per frame (first and last not scored)"),
    )  # fmt: skip
    for key, name, colour in SCORES:
        if layers:
            fig.add_trace(go.Scatter(
                x=numbers, y=result[key].sel(predictor=layers).values, mode="lines+markers", name=name,
                line={"color": colour, "width": 3 if key == "JF" else 1.5}, legendgroup=key,
            ), row=1, col=1)  # fmt: skip
    present = [m for m in BASELINE_STYLE if m in result["predictor"].values]
    values = {m: float(result["JF"].sel(predictor=m)) for m in present}
    lowest = min(values, key=values.get) if values else None
    for method in present:  # labels: the lowest line's under it, the others' above, so two close ones part
        colour, dash = BASELINE_STYLE[method]
        place = "bottom left" if method == lowest else "top right" if method == "token-oracle" else "top left"
        fig.add_hline(
            y=values[method], line={"color": colour, "dash": dash}, row=1, col=1,
            annotation_text=f"{method} J&F {values[method]:.3f}", annotation_position=place,
        )  # fmt: skip
    best = best_layer(result)
    per_frame = (result["J_frame"] + result["F_frame"]) / 2
    frames = result["frame"].values
    for method in [m for m in (best, *BASELINE_STYLE) if m is not None and m in result["predictor"].values]:
        colour, dash = BASELINE_STYLE.get(method, (BEST_COLOUR, "solid"))
        fig.add_trace(go.Scatter(
            x=frames, y=per_frame.sel(predictor=method).values, mode="lines+markers",
            name=f"{method} (best layer)" if method == best else method, line={"color": colour, "dash": dash},
        ), row=1, col=2)  # fmt: skip
    fig.update_xaxes(title_text="layer (0 = token embeddings)", dtick=1, row=1, col=1)
    fig.update_xaxes(title_text="frame", dtick=1, range=[-0.5, len(frames) - 0.5], row=1, col=2)
    fig.update_yaxes(title_text="score (1 = perfect)", range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(title_text="J&F", range=[0, 1.02], row=1, col=2)
    a = result.attrs
    fig.update_layout(
        title=(f"Label propagation through {a.get('clips')} clips ({a.get('objects')} objects): "
               f"DAVIS J&F per layer (top-{a.get('propagation_topk')}, context {a.get('propagation_context')}, "
               f"radius {a.get('propagation_radius')}, τ {a.get('propagation_temperature')})"),
        height=480, width=1200, template="plotly_white", legend={"orientation": "h", "y": -0.18},
    )  # fmt: skip
    return fig


def shown_frames(result: Any) -> np.ndarray:
    """(shown, F, H, W) grey frames of the shown clips: their brightness, or black when the result has no
    frames (the data could not be opened again)."""
    true = np.asarray(result["true_masks"].values)
    frames = np.asarray(result["frames"].values) if "frames" in result else np.zeros(true.shape, np.float32)
    return frames.mean(axis=-1) if frames.ndim == true.ndim + 1 else frames


def mask_strip(frames: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(F, H, W) frames and label masks → one strip (H, F·(W + gap) − gap, 3) of tinted frames."""
    return strip(tinted(frames, masks), GAP)


def tracking_masks_figure(result: Any, methods: list[str] | None = None, width: int = 1240) -> Any:
    """For each shown clip, rows of frames tinted by mask: the truth, then each method's prediction (the
        best layer and the baselines unless `methods` names others); frames left to right, drawn at the whole
    zoom nearest to fitting `width` pixels."""
    from toto_lens.analysis.tracking import best_layer

    if methods is None:
        best = best_layer(result)
        methods = [m for m in (best, *BASELINE_STYLE) if m is not None and m in result["predictor"].values]
    true = np.asarray(result["true_masks"].values)
    frames = shown_frames(result)
    rows = []
    for s, clip in enumerate(result["shown"].values):
        rows.append((f"clip {int(clip)} · truth", tinted(frames[s], true[s])))
        for m in methods:
            rows.append(
                (
                    f"clip {int(clip)} · {m}",
                    tinted(frames[s], result["pred_masks"].sel(predictor=m).values[s]),
                )
            )
    left = 180
    picture, ticks, labels, zoom = image_rows(rows, width - left - 20, GAP)
    frame_w = true.shape[-1]
    centres = [(i * (frame_w + GAP) + frame_w / 2) * zoom for i in range(true.shape[1])]
    title = "Predicted masks beside the truth (object 1 red, 2 cyan, 3 yellow); frame 0 is given"
    return picture_figure(
        picture, ticks, labels, title, left, (centres, [str(i) for i in range(true.shape[1])])
    )
