"""The real images behind the bundled data: scikit-learn's handwritten digits, split by image.

`sklearn.datasets.load_digits` ships 1,797 8×8 images (UCI optdigits, 10 classes) inside the wheel, so
nothing is downloaded. The split is by digit image and fixed (its own seed, independent of any clip
seed), so val and test clips only ever show digit images that training never saw.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from toto_lens.errors import ConfigError

SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.7, 0.15, 0.15)
SPLIT_SEED = 20250109  # fixed forever: changing it would leak test digits into old training runs


@lru_cache(maxsize=1)
def _all_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    images = (data.images / 16.0).astype(np.float32)  # (1797, 8, 8) in [0, 1]
    images.setflags(write=False)
    labels = data.target.astype(np.int64)
    labels.setflags(write=False)
    return images, labels


@lru_cache(maxsize=len(SPLITS))
def split_indices(split: str) -> np.ndarray:
    """Indices into the 1,797 digit images that belong to `split`, sorted."""
    check_split(split)
    n = len(_all_digits()[1])
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    cuts = np.cumsum([round(f * n) for f in SPLIT_FRACTIONS[:-1]])
    parts = dict(zip(SPLITS, np.split(order, cuts), strict=True))
    out = np.sort(parts[split])
    out.setflags(write=False)
    return out


def load_split(split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images (N, 8, 8) float32 in [0, 1], labels (N,), indices into the full set (N,))."""
    images, labels = _all_digits()
    idx = split_indices(split)
    return images[idx], labels[idx], idx


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
