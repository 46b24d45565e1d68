"""Clip sources with labels, and the token layout that packs clips into sequences.

Sources by name (`open_source`): `moving-digits` (videos, start token [1]) and `image-digits`
(sequences of independent images, start token [3]), both from scikit-learn's bundled digits; a folder
written by `materialise` opens as a source too. A user's own data plugs in as any object with the
`ClipSource` protocol.
"""

from __future__ import annotations

import os
from pathlib import Path

from toto_lens.data.clip import Clip, ClipSource, ClipStore, iter_clips, materialise, stack_frames
from toto_lens.data.digits import SPLITS, load_split
from toto_lens.data.layout import START_IDS, Layout
from toto_lens.data.moving import (
    MOTIONS,
    ImageSequenceConfig,
    ImageSequences,
    MovingDigits,
    MovingDigitsConfig,
)
from toto_lens.errors import ConfigError

SOURCES = {"moving-digits": MovingDigits, "image-digits": ImageSequences}

__all__ = [
    "MOTIONS",
    "SOURCES",
    "SPLITS",
    "START_IDS",
    "Clip",
    "ClipSource",
    "ClipStore",
    "ImageSequenceConfig",
    "ImageSequences",
    "Layout",
    "MovingDigits",
    "MovingDigitsConfig",
    "iter_clips",
    "load_split",
    "check_source",
    "materialise",
    "open_source",
    "stack_frames",
]


def check_source(name: str | os.PathLike) -> None:
    """Raise the unknown-data error now, without opening anything, when `name` names no source."""
    if str(name) not in SOURCES and not (Path(name) / "clips.json").is_file():
        raise ConfigError(
            f"unknown data {str(name)!r}; choose one of: {', '.join(SOURCES)}, or a folder written by `materialise`"
        )


def open_source(
    name: str | os.PathLike, split: str = "train", n_clips: int = 1024, seed: int = 0
) -> ClipSource:
    """A source by registry name, or a materialised clip folder by path."""
    if str(name) in SOURCES:
        return SOURCES[str(name)](split=split, n_clips=n_clips, seed=seed)
    check_source(name)
    return ClipStore(name)
