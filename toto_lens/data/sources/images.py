"""`image-folder:PATH`: a folder of images in class subfolders, grouped into sequences of F images.

The paper's image sequences (start token [3]): clip i of (seed, split) is F images drawn from the
split's images, always the same (like the bundled `image-digits`). Labels: `label`, the class of the
first image (what a clip-level probe predicts), and `frame_label`, the class of every image, both with
the class folder names as flag meanings; a folder without class subfolders gives unlabelled clips.
A file that is not an image is reported once and left out; a file whose header reads but whose pixels
do not fails when its clip is read, naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from toto_lens.data.clip import Clip, check_index
from toto_lens.data.labels import LabelSpec
from toto_lens.data.moving import clip_rng
from toto_lens.data.sources.files import (
    FolderSource,
    check_mode,
    check_positive,
    fit_frame,
    folder_spec,
    list_files,
    meaning,
    tell_skipped,
)
from toto_lens.errors import ConfigError

SCHEME = "image-folder"
SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class ImageFolder(FolderSource):
    """Sequences of F images from class subfolders (see the module docstring)."""

    OPTIONS: dict[str, Any] = {"frames": 16, "size": 32, "mode": "rgb"}
    kind = "images"

    def __init__(
        self, path: str | os.PathLike, split: str = "train", n_clips: int = 1024, seed: int = 0,
        frames: int = 16, size: int = 32, mode: str = "rgb",
    ) -> None:  # fmt: skip
        from PIL import Image

        self.root = Path(path).expanduser()
        self.split, self.n_clips, self.seed = split, check_positive(n_clips, "n_clips", SCHEME), seed
        self.frames, self.size = (
            check_positive(frames, "frames", SCHEME),
            check_positive(size, "size", SCHEME),
        )
        self.mode, self._pil_mode = mode, check_mode(mode, SCHEME)
        listing = list_files(self.root, split, SUFFIXES, SCHEME)
        good, skipped = [], []
        for path_, cls in zip(listing.files, listing.classes, strict=True):
            try:
                with Image.open(path_) as im:
                    im.size  # noqa: B018 - reads the header: a file that is no image fails here
                good.append((path_, cls))
            except (OSError, ValueError, Image.DecompressionBombError) as e:
                skipped.append((path_, _reason(e)))
        if not good:
            raise ConfigError(
                f"{SCHEME}: none of the {len(listing.files)} files in {self.root} reads as an image "
                f"({skipped[0][0].name}: {skipped[0][1]})"
            )
        tell_skipped(SCHEME, self.root, skipped, len(listing.files))
        self._files = [p for p, _ in good]
        self._classes = np.array([c for _, c in good], np.int64)
        self.class_names = listing.class_names
        self.name = f"{SCHEME}-{self.root.resolve().name}"
        self._spec = folder_spec(SCHEME, listing, split, n_clips=n_clips, seed=seed, frames=frames,
                                 size=size, mode=mode, skipped=[p.name for p, _ in skipped])  # fmt: skip
        meanings = tuple(map(meaning, self.class_names))
        self.label_spec: tuple[LabelSpec, ...] = (
            (
                LabelSpec("label", (), "int64", meanings, "class of the first image"),
                LabelSpec("frame_label", ("frame",), "int64", meanings, "class of each image"),
            )
            if self.class_names
            else ()
        )

    def __getitem__(self, index: int) -> Clip:
        from PIL import Image

        i = check_index(index, self.n_clips, self.name)
        rng = clip_rng(self.seed, self.split, i, stream=1)
        picks = rng.choice(len(self._files), size=self.frames, replace=len(self._files) < self.frames)
        frames = []
        for p in picks:
            path = self._files[p]
            try:
                with Image.open(path) as im:
                    frames.append(fit_frame(im, self.size, self._pil_mode))
            except (OSError, ValueError) as e:
                raise ConfigError(
                    f"{SCHEME}: cannot read {path}: {_reason(e)}; fix or remove the file"
                ) from None
        labels = (
            {"label": self._classes[picks[0]], "frame_label": self._classes[picks]} if self.label_spec else {}
        )
        return Clip(
            frames=np.stack(frames),
            kind=self.kind,
            split=self.split,
            index=i,
            labels=labels,
            params={
                "seed": self.seed,
                "source": SCHEME,
                "files": [self._files[p].relative_to(self.root).as_posix() for p in picks],
            },  # fmt: skip
        )


def _reason(error: BaseException) -> str:
    """The first line of an exception's message, short enough for a one-line note."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:120]
