"""A cache's clips as the explorers draw them: pixels from tokens, values per position on the frame grid.
One clip's attention pattern comes from `run.attention.clip_patterns`, its frame mass from
`analysis.attention.frame_mass`.

Positions go to (frame, row, col) through the cache's `Layout` (data/layout.py), never by offsets
computed here; tokens go to pixels through the tokenizer the cache records (`store.cache_tokenizer`).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from toto_lens.data.layout import Layout


def decode_clip(tokens: np.ndarray, layout: Layout, tokenizer: Any) -> np.ndarray:
    """One clip's token ids (length,) → its frames as pixels (F, H, W) in [0, 1]; RGB frames are shown
    by their mean over channels."""
    frames = np.asarray(tokenizer.decode(layout.unpack(np.asarray(tokens))), dtype=np.float32)
    return frames.mean(-1) if frames.ndim == 4 else frames


def frame_grid(values: np.ndarray, layout: Layout) -> np.ndarray:
    """Values per position (..., length) → (..., F, R, C) on each token's place; special tokens dropped."""
    values = np.asarray(values)
    visual = layout.visual
    out = np.full((*values.shape[:-1], layout.frames, layout.rows, layout.cols), np.nan, values.dtype)
    f, r, c = (a[visual] for a in (layout.frame_of_position, layout.row_of_position, layout.col_of_position))
    out[..., f, r, c] = values[..., visual]
    return out


def frame_means(values: np.ndarray, layout: Layout) -> np.ndarray:
    """Values per position (..., length) → the mean over each frame's tokens (..., F), NaN skipped."""
    grid = frame_grid(values, layout)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a frame without any value stays NaN
        return np.nanmean(grid.reshape(*grid.shape[:-2], -1), axis=-1)
