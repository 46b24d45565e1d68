"""Clip sources with labels, and the token layout that packs clips into sequences.

Sources by name (`open_source`, `toto_lens.data.sources`): the bundled `moving-digits` (videos, start
token [1]) and `image-digits` (sequences of independent images, start token [3]) from scikit-learn's
digits; the user's `image-folder:PATH`, `video-folder:PATH` and `tokens:PATH` (pre-tokenized shards);
a folder written by `materialise`; and any scheme added with `register_source`.
"""

from __future__ import annotations

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
from toto_lens.data.sources import SOURCES, check_source, open_source, parse_source, register_source

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
    "parse_source",
    "register_source",
    "stack_frames",
]
