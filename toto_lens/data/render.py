"""Drawing digits onto a canvas: one affine sampler for translation, rotation and zoom.

Each digit is placed by its centre (row, col) in canvas pixels, a scale (canvas pixels per source
pixel) and an angle. Every canvas pixel centre is mapped back into the 8×8 source image and sampled
bilinearly (zero outside), so sub-pixel motion renders smoothly and the same code serves every motion
class. Frames composite digits by pixelwise max (Moving MNIST); masks by z-order, object 1 on top.
"""

from __future__ import annotations

import numpy as np

# A pixel belongs to a digit's mask where that digit's own rendering exceeds this intensity.
MASK_THRESHOLD = 0.25


def draw_digit(image: np.ndarray, canvas: int, centre, scale, angle) -> np.ndarray:
    """Render a source image onto (canvas, canvas) frames; angle in radians, counter-clockwise.

    One image (h, w) or one per frame (n, h, w); centre (2,) or (n, 2), scale and angle scalars or (n,):
    with any per-frame argument every frame is drawn in one pass and the result is (n, canvas, canvas)
    (a clip's frames at once: the same numbers as drawing them one by one, a quarter of the time).
    """
    centre, scale, angle = np.asarray(centre, float), np.asarray(scale, float), np.asarray(angle, float)
    many = image.ndim == 3 or centre.ndim == 2 or scale.ndim == 1 or angle.ndim == 1
    images = image if image.ndim == 3 else image[None]
    n = max(len(images), len(np.atleast_2d(centre)), scale.size, angle.size)
    centre = np.broadcast_to(centre, (n, 2))[:, :, None, None]  # (n, 2, 1, 1)
    scale = np.broadcast_to(scale, (n,))[:, None, None]
    angle = np.broadcast_to(angle, (n,))[:, None, None]
    h, w = images.shape[1:]
    rows, cols = np.meshgrid(np.arange(canvas) + 0.5, np.arange(canvas) + 0.5, indexing="ij")
    dy, dx = rows - centre[:, 0], cols - centre[:, 1]  # (n, canvas, canvas)
    # Inverse rotation: a counter-clockwise turn on screen (rows grow downwards) is +angle.
    c, s = np.cos(angle), np.sin(angle)
    sy = (c * dy - s * dx) / scale + h / 2 - 0.5  # source row coordinate of each canvas pixel
    sx = (s * dy + c * dx) / scale + w / 2 - 0.5
    out = _bilinear(image, sy, sx)  # one image serves every frame; else image k is drawn at frame k
    return out if many else out[0]


def _bilinear(image: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Sample (h, w) at (y, x) of any shape, or (n, h, w) image k at (y[k], x[k]) of shape (n, ...)."""
    stack = image if image.ndim == 3 else image[None]
    h, w = stack.shape[1:]
    padded = np.zeros((len(stack), h + 2, w + 2), stack.dtype)  # zero border: samples outside fade to black
    padded[:, 1:-1, 1:-1] = stack
    y, x = np.clip(y + 1, 0, h + 0.999), np.clip(x + 1, 0, w + 0.999)
    y0, x0 = np.floor(y).astype(np.int64), np.floor(x).astype(np.int64)
    fy, fx = y - y0, x - x0
    y1, x1 = np.minimum(y0 + 1, h + 1), np.minimum(x0 + 1, w + 1)
    # flat indices into the padded stack: one `take` per corner is several times faster than indexing
    # with three arrays, and gives the same values
    k = np.arange(len(stack)).reshape(-1, *[1] * (y.ndim - 1)) if image.ndim == 3 else 0
    flat, width = padded.reshape(-1), w + 2
    r0, r1 = (k * (h + 2) + y0) * width, (k * (h + 2) + y1) * width
    top = flat.take(r0 + x0) * (1 - fx) + flat.take(r0 + x1) * fx
    bottom = flat.take(r1 + x0) * (1 - fx) + flat.take(r1 + x1) * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def texture(canvas: int, amplitude: float, rng: np.random.Generator, cells: int = 8) -> np.ndarray:
    """A static background: uniform noise on a coarse (cells+1)² grid, bilinearly enlarged, times amplitude.

    Real video is mostly textured background that stays put while objects move; on a black canvas the
    first frame would cost no more than the later ones and the redundancy the Toto appendix measures
    (Fig. 10) could not show. Features are about canvas/cells pixels wide: a patch tokenizer sees them.
    """
    coarse = rng.uniform(0.0, 1.0, size=(cells + 1, cells + 1))
    pos = (np.arange(canvas) + 0.5) * cells / canvas  # canvas pixel centres in coarse-grid units
    return (amplitude * _bilinear(coarse, *np.meshgrid(pos - 0.5, pos - 0.5, indexing="ij"))).astype(
        np.float32
    )


def composite(
    layers: list[np.ndarray], background: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Frame by pixelwise max of the object layers (and background); mask ids 1 … K, object 1 on top."""
    frame = np.maximum.reduce(layers) if len(layers) > 1 else layers[0].copy()
    if background is not None:
        frame = np.maximum(frame, background)
    mask = np.zeros(frame.shape, dtype=np.uint8)
    for k in range(len(layers), 0, -1):  # back to front, so nearer objects overwrite
        mask[layers[k - 1] > MASK_THRESHOLD] = k
    return np.clip(frame, 0.0, 1.0), mask
