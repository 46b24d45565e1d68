"""`video-folder:PATH`: video files (mp4, webm, mkv, avi, mov, gif …), F frames each at a stride.

Decoded with PyAV, which carries its own FFmpeg libraries (no system ffmpeg, nothing downloaded). Clip i
of (seed, split) is one video of the split, in a seeded order, sampled as F frames from frame `start`
every `stride` frames (the paper: 16 frames, every 4th), resized (FFmpeg's swscale) and centre-cropped to size × size.
Labels: `label` from class subfolders, and every column of a `labels.csv` beside the files (see
`files.csv_labels`). Each file is opened once when the source opens: a file that cannot be opened, has
no video stream, or has fewer frames than the sampling needs is reported once and left out.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from toto_lens.data.clip import Clip, check_index
from toto_lens.data.labels import LabelSpec
from toto_lens.data.sources.files import (
    FolderSource,
    check_mode,
    check_positive,
    csv_labels,
    folder_spec,
    list_files,
    meaning,
    tell_skipped,
)
from toto_lens.data.sources.images import _reason
from toto_lens.errors import ConfigError

SCHEME = "video-folder"
SUFFIXES = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v", ".gif")


def probe_frames(path: Path) -> int:
    """Frames in the file's first video stream as its container says (0: not said); raises if unreadable."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        return int(container.streams.video[0].frames or 0)


def read_frames(path: Path, indices: list[int], size: int, grey: bool) -> tuple[dict[int, np.ndarray], int]:
    """(the frames at `indices` (sorted) as (size, size[, 3]) float32 arrays in [0, 1], frames decoded).

    Decoding stops after the last index. Each kept frame is scaled by FFmpeg's swscale (shorter side to
    `size`, area-averaging when shrinking, as PIL's antialiased resize; colour conversion in the same pass),
    then its centre cropped: about the time of decoding alone (benchmarks/bench_sources.py), where
    converting every kept frame to RGB and resizing it through PIL took 1.3× that."""
    import av

    wanted, out, seen = set(indices), {}, 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for i, frame in enumerate(container.decode(stream)):
            seen = i + 1
            if i in wanted:
                scale = size / min(frame.width, frame.height)
                w, h = max(size, round(frame.width * scale)), max(size, round(frame.height * scale))
                small = frame.reformat(
                    width=w, height=h, format="gray" if grey else "rgb24", interpolation="AREA"
                )
                a = small.to_ndarray()  # (h, w) or (h, w, 3) uint8
                top, left = (h - size) // 2, (w - size) // 2
                out[i] = a[top : top + size, left : left + size].astype(np.float32) / 255.0
            if i >= indices[-1]:
                break
    return out, seen


class VideoFolder(FolderSource):
    """One clip per video of the split (see the module docstring)."""

    OPTIONS: dict[str, Any] = {"frames": 16, "stride": 4, "size": 32, "mode": "rgb", "start": 0}
    kind = "video"

    def __init__(
        self, path: str | os.PathLike, split: str = "train", n_clips: int = 1024, seed: int = 0,
        frames: int = 16, stride: int = 4, size: int = 32, mode: str = "rgb", start: int = 0,
    ) -> None:  # fmt: skip
        self.root = Path(path).expanduser()
        self.split, self.seed = split, seed
        self.frames, self.stride = (
            check_positive(frames, "frames", SCHEME),
            check_positive(stride, "stride", SCHEME),
        )
        self.size, self.start = check_positive(size, "size", SCHEME), start
        if start < 0:
            raise ConfigError(f"{SCHEME}: start must be ≥ 0, got {start}")
        self.mode, self._pil_mode = mode, check_mode(mode, SCHEME)
        self.indices = [start + k * stride for k in range(frames)]
        listing = list_files(self.root, split, SUFFIXES, SCHEME)
        good, skipped = [], []
        for path_ in listing.files:
            try:
                known = probe_frames(path_)
            except Exception as e:  # noqa: BLE001 - PyAV raises many kinds; each bad file is one note
                skipped.append((path_, f"cannot be opened: {_reason(e)}"))
                continue
            if known and known <= self.indices[-1]:
                skipped.append((path_, f"{known} frames, sampling needs {self.indices[-1] + 1}"))
            else:
                good.append(path_)
        if not good:
            first = f" ({skipped[0][0].name}: {skipped[0][1]})" if skipped else ""
            raise ConfigError(
                f"{SCHEME}: no usable video among the {len(listing.files)} files in {self.root}{first}"
            )
        tell_skipped(SCHEME, self.root, skipped, len(listing.files))
        keep = {p: c for p, c in zip(listing.files, listing.classes, strict=True) if p in set(good)}
        order = np.random.default_rng([seed, 7]).permutation(len(good))  # a seeded order, not class order
        self._files = [good[j] for j in order]
        self.n_clips = min(check_positive(n_clips, "n_clips", SCHEME), len(self._files))
        self.name = f"{SCHEME}-{self.root.resolve().name}"
        self.class_names = listing.class_names
        specs, values = csv_labels(self._files, (listing.base, self.root), SCHEME)
        if self.class_names:
            specs = (
                LabelSpec("label", (), "int64", tuple(map(meaning, self.class_names)), "class folder"),
                *specs,
            )
            values["label"] = np.array([keep[p] for p in self._files], np.int64)
        self.label_spec: tuple[LabelSpec, ...] = specs
        self._labels = values
        self._spec = folder_spec(SCHEME, listing, split, n_clips=self.n_clips, seed=seed, frames=frames,
                                 stride=stride, size=size, mode=mode, start=start,
                                 skipped=[p.name for p, _ in skipped])  # fmt: skip

    def __getitem__(self, index: int) -> Clip:
        i = check_index(index, self.n_clips, self.name)
        path = self._files[i]
        try:
            images, seen = read_frames(path, self.indices, self.size, self._pil_mode == "L")
        except Exception as e:  # noqa: BLE001 - a decoder error, named with its file
            raise ConfigError(
                f"{SCHEME}: cannot decode {path}: {_reason(e)}; fix or remove the file"
            ) from None
        if len(images) < len(self.indices):
            raise ConfigError(
                f"{SCHEME}: {path} has {seen} frames but "
                f"frames={self.frames} every {self.stride} from {self.start} needs {self.indices[-1] + 1}; "
                "lower frames or stride"
            )
        frames = np.stack([images[k] for k in self.indices])
        return Clip(
            frames=frames,
            kind=self.kind,
            split=self.split,
            index=i,
            labels={name: values[i] for name, values in self._labels.items()},
            params={"source": SCHEME, "file": path.relative_to(self.root).as_posix(), "frames": self.indices},
        )
