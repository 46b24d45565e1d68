"""What the folder sources share: splits, class subfolders, a labels CSV, frames resized to the model's size.

Splits follow the folder: `PATH/train`, `PATH/val`, `PATH/test` when they exist (ImageNet's layout);
otherwise every file is assigned by a hash of its path relative to PATH (80 % train, 10 % val, 10 %
test), so a file stays in its split whatever else is added, and train never sees a val file.
Classes are the subfolders of the split folder, sorted (torchvision's `ImageFolder` convention).
Frames are resized so that the shorter side is `size`, then centre-cropped to size × size (as the
paper's preprocessing and torchvision's `Resize` + `CenterCrop`), RGB (F, H, W, 3) or grey (F, H, W).
"""

from __future__ import annotations

import csv
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from toto_lens.data.digits import SPLITS, check_split
from toto_lens.data.labels import LabelSpec
from toto_lens.errors import ConfigError

HASH_SPLIT = (0.8, 0.9)  # cumulative train, val shares when the folder has no split subfolders
MODES = {"rgb": "RGB", "grey": "L", "gray": "L"}
LABELS_CSV = "labels.csv"


def check_mode(mode: str, scheme: str) -> str:
    if mode not in MODES:
        raise ConfigError(f"{scheme}: mode={mode!r}; choose rgb or grey")
    return MODES[mode]


def check_positive(value: int, what: str, scheme: str) -> int:
    if value <= 0:
        raise ConfigError(f"{scheme}: {what} must be positive, got {value}")
    return value


def split_root(root: Path, split: str, scheme: str) -> tuple[Path, bool]:
    """(folder holding the split's files, whether it is a split subfolder); a missing split fails."""
    check_split(split)
    if not root.is_dir():
        raise ConfigError(f"{scheme}: {root} is not a folder; give the folder that holds your files")
    present = [s for s in SPLITS if (root / s).is_dir()]
    if not present:
        return root, False
    if split not in present:
        raise ConfigError(
            f"{scheme}: {root} has {', '.join(present)} folders but no {split}/; add it or pass another split"
        )
    return root / split, True


def in_hash_split(relative: str, split: str) -> bool:
    """Whether a file (by its path relative to the source folder) belongs to `split` by the hash rule."""
    u = int.from_bytes(hashlib.sha1(relative.encode()).digest()[:8], "big") / 2**64
    index = int(u >= HASH_SPLIT[0]) + int(u >= HASH_SPLIT[1])
    return SPLITS[index] == split


@dataclass
class FileList:
    """The files of one split: paths, each file's class (-1 without class folders), the class names."""

    root: Path
    base: Path  # the split's folder (root itself without split subfolders)
    files: list[Path]
    classes: list[int]
    class_names: tuple[str, ...]
    split_rule: str


def list_files(root: Path, split: str, suffixes: tuple[str, ...], scheme: str) -> FileList:
    """Files of `split` under the source folder with one of `suffixes`: class subfolders or flat."""
    base, by_folder = split_root(root, split, scheme)
    # Class codes are the same in every split: the union of the class folders of all splits, sorted.
    bases = [root / s for s in SPLITS if (root / s).is_dir()] if by_folder else [root]
    names = tuple(sorted({p.name for b in bases for p in b.iterdir() if p.is_dir() and p.name[0] != "."}))
    found: list[tuple[Path, int]] = []
    for ci, folder in enumerate(names):
        if (base / folder).is_dir():
            found += [(p, ci) for p in sorted((base / folder).rglob("*")) if p.suffix.lower() in suffixes]
    found += [(p, -1) for p in sorted(base.iterdir()) if p.is_file() and p.suffix.lower() in suffixes]
    if not by_folder:
        found = [(p, c) for p, c in found if in_hash_split(p.relative_to(root).as_posix(), split)]
    if not found:
        where = f"{base}" + ("" if by_folder else f" (the {split} share by the hash rule)")
        raise ConfigError(
            f"{scheme}: no {'/'.join(suffixes)} files in {where}; point it at a folder of class "
            "subfolders of such files"
        )
    rule = f"{split}/ folder" if by_folder else f"hash of path: {HASH_SPLIT[0]:.0%} train, 10% val, 10% test"
    return FileList(root, base, [p for p, _ in found], [c for _, c in found], names, rule)


def meaning(name: str) -> str:
    """A class name as one word of CF flag_meanings (which are separated by spaces)."""
    return "_".join(name.split()) or "_"


def csv_labels(
    files: list[Path], folders: tuple[Path, ...], scheme: str
) -> tuple[tuple[LabelSpec, ...], dict[str, np.ndarray]]:
    """Labels from the first `labels.csv` found in `folders` (the split's folder, then the source's): the
    first column is the file's path relative to that folder, or its name; one column per label. Integer
    columns stay integers (-1 where a file has no row); any other column is categorical, its values
    sorted into codes."""
    found = [f / LABELS_CSV for f in folders if (f / LABELS_CSV).is_file()]
    if not found:
        return (), {}
    path, root = found[0], found[0].parent
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2 or len(rows[0]) < 2:
        raise ConfigError(f"{scheme}: {path} needs a header (file, label, …) and one row per file")
    header, body = [h.strip() for h in rows[0]], rows[1:]
    table = {r[0].strip(): r[1:] for r in body if r}
    specs, values = [], {}
    for j, name in enumerate(header[1:]):
        if not name.isidentifier() or name in ("clip", "kind"):
            raise ConfigError(f"{scheme}: {path} column {name!r} must be a name (letters, digits, _)")
        column = [_lookup(table, p, root, j) for p in files]
        if all(v is None or _is_int(v) for v in column):
            values[name] = np.array([-1 if v is None else int(v) for v in column], np.int64)
            specs.append(LabelSpec(name, (), "int64", (), f"{name} from {LABELS_CSV}"))
        else:
            kinds = sorted({v for v in column if v is not None})
            values[name] = np.array([-1 if v is None else kinds.index(v) for v in column], np.int64)
            specs.append(
                LabelSpec(name, (), "int64", tuple(map(meaning, kinds)), f"{name} from {LABELS_CSV}")
            )
    return tuple(specs), values


def _lookup(table: dict[str, list[str]], path: Path, root: Path, j: int) -> str | None:
    row = table.get(path.relative_to(root).as_posix(), table.get(path.name))
    return row[j].strip() if row is not None and j < len(row) and row[j].strip() else None


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def fit_frame(image: Any, size: int, pil_mode: str) -> np.ndarray:
    """A PIL image → (size, size) grey or (size, size, 3) RGB float32 in [0, 1]: the shorter side
    resized to `size` (antialiased), then the centre cropped."""
    from PIL import Image

    img = image.convert(pil_mode)
    w, h = img.size
    scale = size / min(w, h)
    new = (max(size, round(w * scale)), max(size, round(h * scale)))
    if new != (w, h):
        img = img.resize(new, Image.Resampling.BILINEAR)
    left, top = (img.width - size) // 2, (img.height - size) // 2
    img = img.crop((left, top, left + size, top + size))
    return np.asarray(img, dtype=np.float32) / 255.0


_TOLD: set[str] = set()


def tell_skipped(scheme: str, root: Path, skipped: list[tuple[Path, str]], total: int) -> None:
    """One note on stderr (once per folder and process) naming the files left out and why."""
    if not skipped or str(root) in _TOLD:
        return
    _TOLD.add(str(root))
    shown = "; ".join(f"{p.name} ({why})" for p, why in skipped[:5])
    more = f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""
    print(f"note: {scheme}:{root}: skipped {len(skipped)} of {total} files: {shown}{more}", file=sys.stderr)


def folder_spec(scheme: str, listing: FileList, split: str, **extra: Any) -> dict[str, Any]:
    return {"name": scheme, "path": str(listing.root.resolve()), "split": split,
            "split_rule": listing.split_rule, "files": len(listing.files),
            "classes": list(listing.class_names), **extra}  # fmt: skip


class FolderSource:
    """What both folder sources share once opened: their spec (recorded in stores) and their length."""

    _spec: dict[str, Any]
    n_clips: int

    @property
    def spec(self) -> dict[str, Any]:
        return dict(self._spec)

    def __len__(self) -> int:
        return self.n_clips
