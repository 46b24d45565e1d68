"""Clips with their labels, the source protocol, and materialised clip stores.

A `Clip` is what every source yields and every later floor reads: frames, per-frame object masks and
its `labels`, laid out as the source's `label_spec` declares (`toto_lens.data.labels`). A source is
anything with `len`, integer indexing to `Clip`, a `name`, a `split`, a JSON `spec` and a `label_spec`; the tokenizer, trainer and extractor never know which source fed
them (DESIGN.md, "Data sources behind one protocol"). `materialise` writes a source to disk
(safetensors for arrays, JSON for the rest, nothing pickled) and `ClipStore` reads it back as a source
that yields exactly the same clips.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from toto_lens.data.labels import LabelSpec
from toto_lens.errors import ConfigError
from toto_lens.io import atomic_folder, read_json, read_safetensors, to_json


@dataclass
class Clip:
    """One clip: a video, or a sequence of independent images; frames or, for pre-tokenized sources, codes.

    Only `frames` (or `codes`), `kind`, `split`, `index` and the labels are what every source gives; the
    object masks and the digit fields are what the bundled sources add (None / -1 / empty elsewhere).
    """

    frames: np.ndarray | None  # (F, H, W) grey or (F, H, W, C) colour, float32 in [0, 1]; None: codes
    kind: str  # "video" or "images"
    split: str
    index: int
    labels: dict[str, Any] = field(default_factory=dict)  # name → array, as the source's label_spec says
    params: dict[str, Any] = field(default_factory=dict)  # what made the clip: seed, file, frame indices …
    masks: np.ndarray | None = None  # (F, H, W) uint8: 0 background, k = object k (object 1 on top)
    codes: np.ndarray | None = None  # (F, rows, cols) int64 visual codes of a pre-tokenized source
    # The bundled digit sources' own fields (digit_labels turns them into labels):
    digit: int = -1  # class of the main digit (object 1; the first image of an image sequence)
    motion: int = -1  # index into MOTIONS; -1 for image sequences
    digits: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (K,) or (F,) classes
    centre: np.ndarray | None = None  # (F, K, 2) float32 object centre (row, col) in pixels
    velocity: np.ndarray | None = None  # (F, K, 2) float32 centre[t+1] - centre[t]; NaN for images

    def __post_init__(self) -> None:
        if self.frames is None and self.codes is None:
            raise ConfigError("a clip needs frames (F, H, W[, C]) or visual codes (F, rows, cols)")

    @property
    def num_frames(self) -> int:
        return (self.frames if self.frames is not None else self.codes).shape[0]

    @property
    def channels(self) -> int:
        """1 for grey frames (F, H, W), C for (F, H, W, C); 0 for a clip of codes."""
        if self.frames is None:
            return 0
        return 1 if self.frames.ndim == 3 else int(self.frames.shape[-1])


@runtime_checkable
class ClipSource(Protocol):
    name: str
    split: str

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Clip: ...

    @property
    def spec(self) -> dict[str, Any]: ...

    @property
    def label_spec(self) -> tuple[LabelSpec, ...]: ...


def check_index(index: int, length: int, name: str) -> int:
    if not isinstance(index, int | np.integer):
        raise TypeError(f"{name} is indexed by int, got {type(index).__name__}")
    if index < 0:
        index += length
    if not 0 <= index < length:
        raise IndexError(f"clip {index} out of range for {name} with {length} clips")
    return int(index)


def iter_clips(source: ClipSource) -> Iterator[Clip]:
    for i in range(len(source)):
        yield source[i]


def stack_frames(source: ClipSource, limit: int | None = None) -> np.ndarray:
    """All frames of the first `limit` clips as one (N·F, H, W[, C]) array, e.g. to fit a tokenizer."""
    n = len(source) if limit is None else min(limit, len(source))
    clips = [source[i] for i in range(n)]
    if any(c.frames is None for c in clips):
        raise ConfigError(f"{source.name} holds visual codes, not frames; decode them with its tokenizer")
    return np.concatenate([c.frames for c in clips])


_ARRAYS = ("frames", "codes", "masks", "digits", "centre", "velocity")  # each written where every clip has it
_SCALARS = ("digit", "motion", "index")


def materialise(source: ClipSource, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write every clip of `source` into a folder (clips.safetensors + clips.json), atomically."""
    from safetensors.numpy import save_file

    clips = list(iter_clips(source))
    if not clips:
        raise ConfigError(f"source {source.name!r} has no clips to materialise")
    have = [k for k in _ARRAYS if all(getattr(c, k) is not None for c in clips)]
    arrays = {k: np.stack([getattr(c, k) for c in clips]) for k in have}
    arrays.update({k: np.array([getattr(c, k) for c in clips], dtype=np.int64) for k in _SCALARS})
    specs = tuple(source.label_spec)
    arrays.update({f"label.{s.name}": np.stack([c.labels[s.name] for c in clips]) for s in specs})
    meta = {
        "format": "toto-lens-clips",
        "format_version": 2,
        "source": source.spec,
        "label_spec": [s.to_dict() for s in specs],
        "name": source.name,
        "split": source.split,
        "clips": [{"kind": c.kind, "split": c.split, "params": c.params} for c in clips],
    }
    with atomic_folder(path, overwrite=overwrite, error=ConfigError) as tmp:
        save_file(arrays, str(tmp / "clips.safetensors"))
        (tmp / "clips.json").write_text(to_json(meta, "clip metadata", ConfigError))
    return Path(path)


class ClipStore:
    """A materialised source: the clips `materialise` wrote, read back as a source."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        redo = "write it again with `toto-lens data materialise`"
        self._meta = read_json(self.path / "clips.json", redo=redo, error=ConfigError)
        self._arrays = read_safetensors(
            self.path / "clips.safetensors", redo=redo, error=ConfigError, framework="numpy"
        )
        self.name = self._meta["name"]
        self.split = self._meta["split"]
        if self._meta.get("format_version", 1) < 2:  # written before labels were stored: recompute them
            from toto_lens.data.moving import DIGIT_LABELS

            self.label_spec: tuple[LabelSpec, ...] = DIGIT_LABELS
        else:
            self.label_spec = tuple(LabelSpec.from_dict(s) for s in self._meta["label_spec"])

    @property
    def spec(self) -> dict[str, Any]:
        return {**self._meta["source"], "store": str(self.path)}

    def __len__(self) -> int:
        return len(self._meta["clips"])

    def __getitem__(self, index: int) -> Clip:
        i = check_index(index, len(self), self.name)
        info = self._meta["clips"][i]
        old = {"centre": "position"} if "centre" not in self._arrays else {}  # format 1 named it position
        values = {k: self._arrays[old.get(k, k)][i] for k in _ARRAYS if old.get(k, k) in self._arrays}
        values.update({k: int(self._arrays[k][i]) for k in _SCALARS})
        clip = Clip(kind=info["kind"], split=info["split"], params=info["params"], **values)
        if self._meta.get("format_version", 1) < 2:
            from toto_lens.data.moving import digit_labels

            clip.labels = digit_labels(clip)
        else:
            clip.labels = {s.name: self._arrays[f"label.{s.name}"][i] for s in self.label_spec}
        return clip
