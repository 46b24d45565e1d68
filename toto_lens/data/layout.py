"""The token layout of a clip, in one place: every later floor asks it instead of recomputing offsets.

A clip of F frames, each a rows × cols grid of visual codes, becomes one sequence (Toto, §3 and Fig. 15):

    position   0          1 … R·C          …   F·R·C              F·R·C + 1
    token      [start]    frame 0 (raster)  …   frame F-1 (raster) [end]

Id map (shared with `ModelConfig`): 0 pad, 1 start of a video, 2 end, 3 start of an image sequence,
then visual code c ↦ token id c + 4 (`code_offset`). Position p of frame f, row r, col c is
1 + f·R·C + r·C + c; special positions map to (-1, -1, -1).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from toto_lens.config import END_ID, IMAGE_START_ID, NUM_SPECIAL, VIDEO_START_ID
from toto_lens.errors import ConfigError
from toto_lens.io import dict_attr

START_IDS = {"video": VIDEO_START_ID, "images": IMAGE_START_ID}


@dataclass(frozen=True)
class Layout:
    frames: int
    rows: int
    cols: int
    code_offset: int = NUM_SPECIAL
    end_id: int = END_ID
    video_start_id: int = VIDEO_START_ID
    image_start_id: int = IMAGE_START_ID

    @classmethod
    def for_model(cls, frames: int, rows: int, cols: int, config: Any) -> Layout:
        """The layout of a model's sequences: its code offset and special ids (a `ModelConfig`)."""
        return cls(
            frames,
            rows,
            cols,
            config.code_offset,
            config.end_id,
            config.video_start_id,
            config.image_start_id,
        )

    @property
    def start_ids(self) -> dict[str, int]:
        return {"video": self.video_start_id, "images": self.image_start_id}

    def __post_init__(self) -> None:
        if min(self.frames, self.rows, self.cols) <= 0:
            raise ConfigError(
                f"layout needs positive frames, rows and cols, got {self.frames}×{self.rows}×{self.cols}"
            )

    @property
    def tokens_per_frame(self) -> int:
        return self.rows * self.cols

    @property
    def length(self) -> int:
        """Tokens in a packed clip: start + frames + end."""
        return self.frames * self.tokens_per_frame + 2

    def position(self, frame: int, row: int, col: int) -> int:
        if not (0 <= frame < self.frames and 0 <= row < self.rows and 0 <= col < self.cols):
            raise IndexError(
                f"(frame, row, col) = ({frame}, {row}, {col}) outside {self.frames}×{self.rows}×{self.cols}"
            )
        return 1 + frame * self.tokens_per_frame + row * self.cols + col

    def frame_slice(self, frame: int) -> slice:
        """Positions of one frame's tokens."""
        start = self.position(frame, 0, 0)
        return slice(start, start + self.tokens_per_frame)

    @cached_property
    def _coords(self) -> np.ndarray:
        coords = np.full((self.length, 3), -1, dtype=np.int64)
        f, r, c = np.meshgrid(
            np.arange(self.frames), np.arange(self.rows), np.arange(self.cols), indexing="ij"
        )
        coords[1:-1] = np.stack([f.ravel(), r.ravel(), c.ravel()], axis=1)
        coords.setflags(write=False)
        return coords  # (length, 3): frame, row, col per position

    def locate(self, position: int) -> tuple[int, int, int]:
        """(frame, row, col) of a position; (-1, -1, -1) for the start and end tokens."""
        f, r, c = self._coords[position]
        return int(f), int(r), int(c)

    @property
    def frame_of_position(self) -> np.ndarray:
        return self._coords[:, 0]

    @property
    def row_of_position(self) -> np.ndarray:
        return self._coords[:, 1]

    @property
    def col_of_position(self) -> np.ndarray:
        return self._coords[:, 2]

    @property
    def visual(self) -> np.ndarray:
        """Boolean mask of the positions that hold visual tokens."""
        return self.frame_of_position >= 0

    def pack(self, codes: np.ndarray, kind: str = "video") -> np.ndarray:
        """Visual codes (..., F, R, C) → token ids (..., length) with start, offset codes and end."""
        codes = np.asarray(codes)
        if codes.shape[-3:] != (self.frames, self.rows, self.cols):
            raise ConfigError(
                f"codes of shape {codes.shape} do not fit the layout {self.frames}×{self.rows}×{self.cols}"
            )
        if kind not in self.start_ids:
            raise ConfigError(f"unknown clip kind {kind!r}; choose one of: {', '.join(self.start_ids)}")
        lead = codes.shape[:-3]
        out = np.empty((*lead, self.length), dtype=np.int64)
        out[..., 0] = self.start_ids[kind]
        out[..., 1:-1] = codes.reshape(*lead, -1) + self.code_offset
        out[..., -1] = self.end_id
        return out

    def encode_clips(self, clips: list, tokenizer) -> np.ndarray:
        """`Clip`s → packed token ids (n, length): each kind tokenized together and given its start token;
        a pre-tokenized clip (`clip.codes`, frames None) is packed as it is."""
        out = np.empty((len(clips), self.length), dtype=np.int64)
        for kind in {c.kind for c in clips}:
            idx = [i for i, c in enumerate(clips) if c.kind == kind]
            coded = [i for i in idx if clips[i].frames is None]
            framed = [i for i in idx if clips[i].frames is not None]
            if framed:
                codes = tokenizer.encode(np.stack([clips[i].frames for i in framed]))  # (n, F, R, C)
                out[np.array(framed)] = self.pack(codes, kind)
            if coded:
                out[np.array(coded)] = self.pack(np.stack([clips[i].codes for i in coded]), kind)
        return out

    def unpack(self, ids: np.ndarray) -> np.ndarray:
        """Token ids (..., length) → visual codes (..., F, R, C); the inverse of `pack`."""
        ids = np.asarray(ids)
        if ids.shape[-1] != self.length:
            raise ConfigError(
                f"sequence of {ids.shape[-1]} tokens does not fit the layout (length {self.length})"
            )
        codes = ids[..., 1:-1] - self.code_offset
        if codes.size and codes.min() < 0:
            raise ConfigError(
                "a visual position holds a special token id; is this a packed clip of this layout?"
            )
        return codes.reshape(*ids.shape[:-1], self.frames, self.rows, self.cols)

    def kind_of(self, ids: np.ndarray) -> str:
        """ "video" or "images", read from the start token."""
        start = int(np.asarray(ids)[..., 0].flat[0])
        for kind, sid in self.start_ids.items():
            if sid == start:
                return kind
        raise ConfigError(
            f"start token {start} is neither video ({self.video_start_id}) nor images ({self.image_start_id})"
        )


def layout_of(ds: Any) -> Layout:
    """The token layout of a cache (an `xarray.Dataset` or one of its arrays): from its `layout` attribute,
    else from its (pos_frame, row, col) coordinates; the code offset from its model config when recorded."""
    spec, config = dict_attr(ds.attrs, "layout"), dict_attr(ds.attrs, "model_config")
    ids = [config.get(k) for k in ("pad_id", "video_start_id", "end_id", "image_start_id")]
    extra = {}
    if all(isinstance(i, int) for i in ids):
        first = config.get("first_code_id")
        extra = {"code_offset": max(ids) + 1 if first is None else int(first), "end_id": config["end_id"],
                 "video_start_id": config["video_start_id"], "image_start_id": config["image_start_id"]}  # fmt: skip
    if {"frames", "rows", "cols"} <= set(spec):
        return Layout(int(spec["frames"]), int(spec["rows"]), int(spec["cols"]), **extra)
    if all(n in ds.coords for n in ("pos_frame", "row", "col")):
        f, r, c = (int(ds[n].max()) + 1 for n in ("pos_frame", "row", "col"))
        return Layout(f, r, c, **extra)
    raise ConfigError("cannot tell the clips' layout: pass layout=Layout(frames, rows, cols)")
