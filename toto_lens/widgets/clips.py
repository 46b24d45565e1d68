"""A cache's clips as the explorers draw them: pixels from tokens, values per position on the frame grid.
One clip's attention pattern comes from `run.attention.clip_patterns`, its frame mass from
`analysis.attention.frame_mass`.

Positions go to (frame, row, col) through the cache's `Layout` (data/layout.py), never by offsets
computed here; tokens go to pixels through the tokenizer the cache records (its spec in the store's
attributes, its state in the checkpoint the store came from).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from toto_lens.data.layout import Layout
from toto_lens.io import dict_attr
from toto_lens.widgets.base import WidgetError


def checkpoint_path(ds: Any) -> str:
    """The folder of the checkpoint a cache was extracted from (its `checkpoint` attribute)."""
    path = dict_attr(ds.attrs, "checkpoint").get("path")
    if not path:
        raise WidgetError("the cache does not record its checkpoint's path (attribute checkpoint.path)")
    return str(path)


def tokenizer_of(ds: Any) -> Any:
    """The tokenizer of a cache: its spec from the store, its state from the checkpoint's folder."""
    from toto_lens.checkpoints import TOKENIZER_STATE, resolve_checkpoint
    from toto_lens.io import read_safetensors
    from toto_lens.tokenizers import tokenizer_from_spec

    spec = dict_attr(ds.attrs, "tokenizer")
    if not spec:
        raise WidgetError("the cache does not record its tokenizer (attribute tokenizer)")
    folder = resolve_checkpoint(checkpoint_path(ds))
    # The state file alone: loading the whole checkpoint would read the model's weights for nothing.
    state = {}
    if (folder / TOKENIZER_STATE).is_file():
        state = read_safetensors(
            folder / TOKENIZER_STATE, redo="save the checkpoint again", error=WidgetError, framework="numpy"
        )
    return tokenizer_from_spec(spec, state)


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
