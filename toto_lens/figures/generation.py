"""Figures of generated clips: real frames above generated ones (Fig. 15), their quality per frame, and an
animated GIF of both."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from toto_lens.figures.clips import image_rows, picture_figure, strip

GAP = 2
COLOURS = {"generated": "#1f77b4", "copy-last": "#7f7f7f", "truth": "#2ca02c"}


def _grey(frames: np.ndarray) -> np.ndarray:
    """(F, H, W[, C]) frames in [0, 1] → (F, H, W, 3) in [0, 255]."""
    frames = np.asarray(frames, dtype=np.float32)
    rgb = np.repeat(frames[..., None], 3, axis=-1) if frames.ndim == 3 else frames[..., :3]
    return rgb * 255.0


def generation_figure(result: Any, clips: int = 4, width: int = 1080) -> Any:
    """For the first `clips` clips: the real clip above the generated one, frames left to right; the
    frames given as the prompt are the same in both."""
    k = int(result.attrs.get("prompt_frames", 0))
    rows = []
    for i, clip in enumerate(result["clip"].values[:clips]):
        rows.append((f"clip {int(clip)} · real", _grey(result["true_frames"].values[i])))
        rows.append((f"clip {int(clip)} · generated", _grey(result["generated_frames"].values[i])))
    picture, ticks, labels, _ = image_rows(rows, width - 190)
    given = f"the first {k} frame{'s' if k != 1 else ''} given" if k else "from the start token alone"
    return picture_figure(
        picture, ticks, labels, f"Real clips above generated ones ({given}); frames left to right"
    )


def quality_figure(result: Any) -> Any:
    """PSNR and SSIM per frame (mean over clips) of the generated and copy-last continuations against the
    truth; the n-gram divergences and the Fréchet distance per continuation."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=4, horizontal_spacing=0.07, subplot_titles=(
        "PSNR per frame (dB)", "SSIM per frame", "n-gram divergence from real clips", "Fréchet distance"))  # fmt: skip
    frames = result["frame"].values
    for c in ("generated", "copy-last"):
        one = result.sel(continuation=c)
        for col, stat in ((1, "psnr"), (2, "ssim")):
            values = np.where(np.isfinite(one[stat].values), one[stat].values, np.nan)
            mean = np.nanmean(values, axis=0) if np.isfinite(values).any() else np.full(len(frames), np.nan)
            fig.add_trace(go.Scatter(x=frames, y=mean, mode="lines+markers", name=c, line={"color": COLOURS[c]},
                                     legendgroup=c, showlegend=col == 1), row=1, col=col)  # fmt: skip
    names = [str(c) for c in result["continuation"].values]
    colours = [COLOURS[n] for n in names]
    for key, label, pattern in (("ngram_js_1", "unigram", ""), ("ngram_js_2", "bigram", "/")):
        fig.add_trace(go.Bar(x=names, y=result[key].values, name=f"JS {label} (bits)", showlegend=False,
                             marker={"color": colours, "pattern": {"shape": pattern}},
                             text=[label] * len(names), textposition="inside"), row=1, col=3)  # fmt: skip
    fig.add_trace(go.Bar(x=names, y=result["frechet"].values, marker={"color": colours}, showlegend=False),
                  row=1, col=4)  # fmt: skip
    fig.update_xaxes(title_text="frame", dtick=1, row=1, col=1)
    fig.update_xaxes(title_text="frame", dtick=1, row=1, col=2)
    fig.update_layout(
        title=f"Quality of generated frames against the truth (layer {result.attrs.get('feature_layer')} "
        "features for the Fréchet distance)",
        template="plotly_white", height=440, width=1250, barmode="group", legend={"orientation": "h", "y": -0.2},
    )  # fmt: skip
    return fig


def write_gif(result: Any, path: str | os.PathLike, clips: int = 4, zoom: int = 3) -> Path:
    """An animated GIF: at each step one frame of the first `clips` real clips (top row) and generated
    clips (bottom row); frames past the real clips' end show the generated row alone."""
    from PIL import Image

    from toto_lens.io import atomic_file

    real = np.asarray(result["true_frames"].values[:clips])
    gen = np.asarray(result["generated_frames"].values[:clips])
    images = []
    for t in range(gen.shape[1]):
        top = _grey(real[:, t]) if t < real.shape[1] else np.full(_grey(gen[:, t]).shape, 255.0, np.float32)
        picture = np.concatenate([strip(top, GAP), np.full((2 * GAP, strip(top, GAP).shape[1], 3), 255.0),
                                  strip(_grey(gen[:, t]), GAP)])  # fmt: skip
        picture = picture.clip(0, 255).astype(np.uint8).repeat(zoom, 0).repeat(zoom, 1)
        images.append(Image.fromarray(picture))
    path = Path(path)
    with atomic_file(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=250, loop=0)
    return path
