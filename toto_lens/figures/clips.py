"""Looking at clips: frames beside their object masks and labels, as PNG, animated GIF or HTML.

What `toto-lens data preview` writes. One row per clip: its label line, the frames left to right (grey
or colour), and, for sources with object masks, under them the same frames tinted by object mask
(object 1 red, 2 cyan, 3 yellow), so that a person can check at a glance that the labels describe what
is drawn.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from toto_lens.data.clip import Clip
from toto_lens.data.moving import MOTIONS
from toto_lens.errors import ConfigError
from toto_lens.io import atomic_file

OBJECT_COLOURS = np.array(
    [[0, 0, 0], [230, 60, 60], [40, 200, 220], [240, 210, 40], [150, 90, 230]], dtype=np.float32
)
PREVIEW_SUFFIXES = (".png", ".gif", ".html")


def clip_label(clip: Clip) -> str:
    if clip.params.get("source") not in ("moving-digits", "image-digits"):
        kind = "video" if clip.kind == "video" else "image sequence"
        scalars = [
            f"{k} {np.asarray(v).item()}" for k, v in clip.labels.items() if np.ndim(v) == 0 and k != "kind"
        ]
        where = clip.params.get("file") or clip.params.get("shard")
        return " · ".join([f"{clip.split} clip {clip.index}", kind, *scalars, *([where] if where else [])])
    if clip.kind == "images":
        return f"{clip.split} clip {clip.index} · image sequence · digits {' '.join(map(str, clip.digits.tolist()))}"
    objects = " ".join(map(str, clip.digits.tolist()))
    return f"{clip.split} clip {clip.index} · digit {clip.digit} · {MOTIONS[clip.motion]} · objects {objects}"


def as_rgb(frames: np.ndarray) -> np.ndarray:
    """(F, H, W) grey or (F, H, W, C) frames in [0, 1] → (F, H, W, 3) float RGB in [0, 255]."""
    x = frames if frames.ndim == 4 else frames[..., None]
    return np.broadcast_to(x[..., :3] if x.shape[-1] >= 3 else x[..., :1], (*x.shape[:3], 3)) * 255.0


def tinted(frames: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(F, H, W[, C]) frames and masks → (F, H, W, 3) float RGB in [0, 255], each object in its colour."""
    colours = OBJECT_COLOURS[np.minimum(masks, len(OBJECT_COLOURS) - 1)]  # (F, H, W, 3)
    base = as_rgb(frames)
    return np.where(masks[..., None] > 0, 0.35 * base + 0.65 * colours, base)


def strip(images: np.ndarray, gap: int) -> np.ndarray:
    """(F, H, W, 3) → (H, F·(W + gap) - gap, 3) with dark gaps between frames."""
    f, h, w, _ = images.shape
    out = np.full((h, f * (w + gap) - gap, 3), 40.0, dtype=np.float32)
    for i in range(f):
        out[:, i * (w + gap) : i * (w + gap) + w] = images[i]
    return out


def image_rows(
    rows: list[tuple[str, np.ndarray]], width: int, gap: int = 2
) -> tuple[np.ndarray, list[float], list[str], int]:
    """Stack labelled strips (label, (F, H, W, 3) in [0, 255]) into one uint8 picture at the whole zoom that
    best fills `width` pixels: (picture, tick positions, tick labels, zoom). Shorter strips are padded."""
    strips = [strip(images, gap) for _, images in rows]
    wide = max(s.shape[1] for s in strips)
    blocks, ticks, y = [], [], 0
    for s in strips:
        padded = np.full((s.shape[0], wide, 3), 255.0, np.float32)
        padded[:, : s.shape[1]] = s
        blocks += [padded, np.full((gap * 2, wide, 3), 255.0, np.float32)]
        ticks.append(y + s.shape[0] / 2)
        y += s.shape[0] + 2 * gap
    zoom = max(1, round(width / wide))
    picture = np.concatenate(blocks).clip(0, 255).astype(np.uint8).repeat(zoom, 0).repeat(zoom, 1)
    return picture, [t * zoom for t in ticks], [label for label, _ in rows], zoom


def picture_figure(
    picture: np.ndarray,
    ticks: list[float],
    labels: list[str],
    title: str,
    left: int = 170,
    frame_ticks: tuple[list[float], list[str]] | None = None,
) -> Any:
    """A plotly figure of a picture (sent as PNG, not as a pixel array: a far smaller page), rows labelled;
    `frame_ticks` (positions, labels) numbers the frames along the top."""
    import base64
    import io

    import plotly.graph_objects as go
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG")
    fig = go.Figure(go.Image(source="data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode(),
                             hoverinfo="skip"))  # fmt: skip
    fig.update_yaxes(tickvals=ticks, ticktext=labels, showgrid=False)
    if frame_ticks is None:
        fig.update_xaxes(visible=False)
    else:
        fig.update_xaxes(
            tickvals=frame_ticks[0], ticktext=frame_ticks[1], title_text="frame", side="top", showgrid=False
        )
    fig.update_layout(
        title=title, template="plotly_white", height=picture.shape[0] + (130 if frame_ticks else 100), width=picture.shape[1] + left + 20,
        margin={"l": left, "r": 20, "t": 110 if frame_ticks else 70, "b": 20},
    )  # fmt: skip
    return fig


def clip_rows(clip: Clip, frames: slice | None = None, gap: int = 2) -> np.ndarray:
    """One clip as two strips (frames over tinted masks), (2H + gap, width, 3) uint8; only the frames
    for a clip without masks."""
    sel = frames or slice(None)
    top = strip(as_rgb(clip.frames[sel]), gap)
    if clip.masks is None:
        return top.clip(0, 255).astype(np.uint8)
    bottom = strip(tinted(clip.frames[sel], clip.masks[sel]), gap)
    sep = np.full((gap, top.shape[1], 3), 40.0, dtype=np.float32)
    return np.concatenate([top, sep, bottom]).clip(0, 255).astype(np.uint8)


def mask_legend(clips: list[Clip]) -> list[tuple[str, tuple[int, int, int]]]:
    """(label, RGB colour) of every object colour the clips' masks use, in object order, e.g.
    ("object 1 (digit 7)", (230, 60, 60)) when all the clips agree on that object's digit."""
    used = sorted({int(v) for c in clips if c.masks is not None for v in np.unique(c.masks) if v > 0})
    out = []
    for obj in used:
        colour = tuple(int(v) for v in OBJECT_COLOURS[min(obj, len(OBJECT_COLOURS) - 1)])
        out.append((f"object {obj}", colour))
    return out


def frame_numbers(clip: Clip, frames: slice | None = None) -> list[int]:
    """The numbers of the frames a preview row shows, left to right."""
    return list(range(clip.num_frames))[frames or slice(None)]


def preview_image(clips: list[Clip], zoom: int = 3, frames: slice | None = None):
    """A PIL image of the clips, one labelled block per clip: frame numbers over the frames, and a
    legend of the mask colours at the bottom."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    blocks = [np.kron(clip_rows(c, frames), np.ones((zoom, zoom, 1), dtype=np.uint8)) for c in clips]
    label_h, number_h, pad, legend_h = 16, 12, 6, 22
    width = max(max(b.shape[1] for b in blocks) + 2 * pad, 420)
    height = sum(b.shape[0] + label_h + number_h + pad for b in blocks) + pad + legend_h
    canvas = Image.new("RGB", (width, height), (20, 20, 20))
    draw = ImageDraw.Draw(canvas)
    y = pad
    for clip, block in zip(clips, blocks, strict=True):
        draw.text((pad, y), clip_label(clip), fill=(235, 235, 235), font=font)
        y += label_h
        frame_w = clip.frames.shape[2] * zoom
        for i, number in enumerate(frame_numbers(clip, frames)):  # above each frame, as in the store
            draw.text((pad + i * (frame_w + 2 * zoom) + 1, y), f"f{number}", fill=(170, 170, 170), font=font)
        y += number_h
        canvas.paste(Image.fromarray(block), (pad, y))
        y += block.shape[0] + pad
    x = pad
    key = "top: frames; bottom: masks" if any(c.masks is not None for c in clips) else "frames"
    draw.text((x, y + 4), key, fill=(200, 200, 200), font=font)
    x += 170
    for label, colour in mask_legend(clips):
        draw.rectangle((x, y + 4, x + 10, y + 14), fill=colour)
        draw.text((x + 14, y + 4), label, fill=(220, 220, 220), font=font)
        x += 20 + int(draw.textlength(label, font=font))
    return canvas


def preview_figure(clips: list[Clip], zoom: int = 2):
    """A plotly figure of the same picture, with each clip's labels in its hover text."""
    import base64
    import io

    import plotly.graph_objects as go

    picture = preview_image(clips, zoom=zoom)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")  # a PNG source, not a JSON array of pixels: 20× smaller HTML
    source = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    image = np.asarray(picture)
    fig = go.Figure(go.Image(source=source, hoverinfo="skip"))
    fig.update_layout(
        title=f"{len(clips)} clips: frames"
        + (" (top) and object masks (bottom)" if any(c.masks is not None for c in clips) else ""),
        width=image.shape[1] + 60,
        height=image.shape[0] + 100,
        margin={"l": 20, "r": 20, "t": 60, "b": 20},
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def write_preview(clips: list[Clip], path: str | os.PathLike, command: str | None = None) -> Path:
    """Write clips to .png (all frames), .gif (animated, one frame at a time) or .html (plotly: a page
    with its title, the clips it shows and, when given, the `command` that writes it again)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in PREVIEW_SUFFIXES:
        raise ConfigError(
            f"cannot write a preview as {suffix or 'a file without suffix'}; use .png, .gif or .html"
        )
    if not clips:
        raise ConfigError("no clips to preview")
    with atomic_file(path) as tmp:
        if suffix == ".png":
            preview_image(clips).save(tmp, format="PNG")
        elif suffix == ".gif":
            n = min(c.num_frames for c in clips)
            images = [preview_image(clips, zoom=4, frames=slice(t, t + 1)) for t in range(n)]
            images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=250, loop=0)
        else:
            from toto_lens.figures import figure_title, html_page

            fig = preview_figure(clips)
            about = f"{len(clips)} clips: {'; '.join(clip_label(c) for c in clips[:4])}{' …' if len(clips) > 4 else ''}"
            page = html_page(
                [fig.to_html(full_html=False, include_plotlyjs=True)], figure_title(fig), about, command
            )
            tmp.write_text(page, encoding="utf-8")
    return path
