"""The real images behind the bundled data: scikit-learn's handwritten digits, split by image.

scikit-learn ships 1,797 8×8 images (UCI optdigits, 10 classes) inside its wheel, so nothing is
downloaded. They are read here from that file (`sklearn/datasets/data/digits.csv.gz`) as
`sklearn.datasets.load_digits` reads it, but without importing scikit-learn, whose import alone takes
seconds (`toto-lens extract` never needs it otherwise). The split is by digit image and fixed (its own seed, independent of any clip
seed), so val and test clips only ever show digit images that training never saw.
"""

from __future__ import annotations

import gzip
import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

from toto_lens.errors import ConfigError

SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.7, 0.15, 0.15)
SPLIT_SEED = 20250109  # fixed forever: changing it would leak test digits into old training runs


def digits_file() -> Path:
    """scikit-learn's `datasets/data/digits.csv.gz`, found without importing scikit-learn."""
    spec = importlib.util.find_spec("sklearn")  # locates the package; does not execute it
    folders = list(spec.submodule_search_locations or ()) if spec else []
    for folder in folders:
        path = Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            return path
    raise ConfigError(
        "the bundled digits come with scikit-learn, and no sklearn/datasets/data/digits.csv.gz was found "
        f"({'looked in ' + ', '.join(folders) if folders else 'scikit-learn is not installed'}); "
        "install scikit-learn"
    )


def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images (1797, 8, 8) float64 in 0…16, targets (1797,) int): what `load_digits()` gives as
    `.images` and `.target`, read with numpy from the same file."""
    with gzip.open(digits_file(), mode="rt", encoding="utf-8") as f:
        data = np.loadtxt(f, delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int, copy=False)


@lru_cache(maxsize=1)
def _all_digits() -> tuple[np.ndarray, np.ndarray]:
    raw, targets = read_digits()
    images = (raw / 16.0).astype(np.float32)  # (1797, 8, 8) in [0, 1]
    images.setflags(write=False)
    labels = targets.astype(np.int64)
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
