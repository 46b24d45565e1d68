"""Chunk integrity: which chunk files a store must hold, the manifest of them, and the checks.

Two things can go wrong with a store on disk, and zarr alone notices only one of them:

* a chunk file is **altered or truncated**: every array is written with a crc32c checksum after Zstd
  (`schema.compressors`), so its bytes no longer match their checksum. `CheckedStore` checks it as each
  chunk is read and raises `ChunkError` naming the chunk and its clips, before zstd or zarr sees it;
  `verify` checks every chunk without decompressing anything.
* a chunk file is **missing**: zarr reads it as the fill value (NaN, 0) without a word. So the writer
  writes every chunk of the region it fills, fill-only ones included (`write_empty_chunks`), which makes
  the set of chunk keys a store must hold a function of its arrays' metadata and of the request
  (`expected`): tokens, loss, masks, complete, labels and acts_pooled/acts_frame/attn_frame cover every
  clip; acts_token the first `token_clips` clips, attn_pattern the first `pattern_clips`; the attention
  arrays have no chunks for layer 0 (embeddings have no attention); coordinates are one chunk each. At
  finish the writer records that set as the `manifest` attribute; `open_cache` compares it with a
  listing of the store's folders (no chunk is read) and a resumed extraction redoes the batches whose
  chunks are not there.

The manifest is compact: for each array, per dimension, the ranges of chunk indices that exist, so that
the chunks are their Cartesian product (`keys`). It also holds the number of chunks and `crc32c_sha256`,
a digest of every chunk's stored checksum (the last 4 bytes of each file), which identifies the values
of a finished store without reading them.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from toto_lens.store.reader import CacheError

MANIFEST_FORMAT = "toto-lens-chunks/1"
ATTN_ARRAYS = ("attn_frame", "attn_pattern")


class ChunkError(CacheError):
    """A chunk whose bytes do not match their checksum: altered or truncated on disk."""


@dataclass(frozen=True)
class ArrayMeta:
    name: str
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dims: tuple[str, ...]

    @property
    def grid(self) -> tuple[int, ...]:
        return tuple(-(-s // c) for s, c in zip(self.shape, self.chunks, strict=True))

    def clips_of(self, index: int) -> range:
        """Clips held by chunk `index` along `clip` (the first dim)."""
        c = self.chunks[0]
        return range(index * c, min((index + 1) * c, self.shape[0]))


def array_meta(path: Path) -> dict[str, ArrayMeta]:
    """Every array of the store, read from its `zarr.json` (no zarr import, no data read)."""
    out = {}
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
        meta_file = Path(entry.path) / "zarr.json"
        if not entry.is_dir() or not meta_file.is_file():
            continue
        meta = json.loads(meta_file.read_text())
        if meta.get("node_type") != "array":
            continue
        chunks = meta["chunk_grid"]["configuration"]["chunk_shape"]
        dims = meta.get("dimension_names") or [f"dim_{i}" for i in range(len(meta["shape"]))]
        out[entry.name] = ArrayMeta(entry.name, tuple(meta["shape"]), tuple(chunks), tuple(dims))
    return out


def _attr(attrs: dict[str, Any], name: str) -> Any:
    from toto_lens.io import json_attr

    return json_attr(attrs, name, None)


def expected(meta: dict[str, ArrayMeta], attrs: dict[str, Any]) -> dict[str, list[list[list[int]]]]:
    """Per array, per dimension, the [start, stop) ranges of chunk indices a finished store holds."""
    request = _attr(attrs, "request") or {}
    layers = list(request.get("layers", []))
    written = {"acts_token": request.get("token_clips"), "attn_pattern": request.get("pattern_clips")}
    out = {}
    for name, m in meta.items():
        ranges = [[[0, n]] for n in m.grid]
        if m.dims and m.dims[0] == "clip":
            clips = m.shape[0] if written.get(name) is None else min(int(written[name]), m.shape[0])
            ranges[0] = [[0, -(-clips // m.chunks[0])]] if clips else []
        if name in ATTN_ARRAYS and "layer" in m.dims and 0 in layers:
            at = m.dims.index("layer")
            zero = layers.index(0) // m.chunks[at]
            ranges[at] = [r for r in ([0, zero], [zero + 1, m.grid[at]]) if r[1] > r[0]]
        out[name] = ranges
    return out


def keys(ranges: list[list[list[int]]], clip_chunks: set[int] | None = None) -> Iterator[str]:
    """Chunk keys `c/i/j/…` of one array's ranges; only clip chunks in `clip_chunks` when given."""
    axes = [[i for a, b in dim for i in range(a, b)] for dim in ranges]
    if clip_chunks is not None and axes:
        axes[0] = [i for i in axes[0] if i in clip_chunks]
    for index in itertools.product(*axes):
        yield "c/" + "/".join(map(str, index)) if index else "c"


def count(ranges: list[list[list[int]]]) -> int:
    return int(np.prod([sum(b - a for a, b in dim) for dim in ranges])) if ranges else 1


def listed(path: Path, name: str) -> set[str]:
    """Chunk keys present under `<path>/<name>/c/`, from directory listings alone."""
    found: set[str] = set()
    root = path / name

    def walk(folder: str, prefix: str) -> None:
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return
        for e in entries:
            if e.name.startswith("."):  # a temporary file of a write in progress
                continue
            key = f"{prefix}/{e.name}"
            if e.is_dir(follow_symlinks=False):
                walk(e.path, key)
            else:
                found.add(key)

    if (root / "c").is_file():  # a 0-d array
        found.add("c")
    walk(str(root / "c"), "c")
    return found


def make_manifest(path: Path, attrs: dict[str, Any]) -> dict[str, Any]:
    """The manifest of a finished store: its expected chunks, their number, the digest of their checksums."""
    arrays = expected(array_meta(path), attrs)
    digest = hashlib.sha256()
    for name in sorted(arrays):
        for key in keys(arrays[name]):
            digest.update(f"{name}/{key}:".encode())
            try:
                with open(path / name / key, "rb") as f:
                    f.seek(-4, os.SEEK_END)
                    digest.update(f.read(4))
            except OSError:
                digest.update(b"missing")
    total = sum(count(r) for r in arrays.values())
    return {"format": MANIFEST_FORMAT, "chunks": total, "crc32c_sha256": digest.hexdigest(), "arrays": arrays}


def store_attrs(path: Path) -> dict[str, Any]:
    """The group's attributes, read from its zarr.json."""
    meta = json.loads((path / "zarr.json").read_text())
    return meta.get("attributes", {})


def manifest_of(attrs: dict[str, Any]) -> dict[str, Any] | None:
    value = _attr(attrs, "manifest")
    return value if isinstance(value, dict) and value.get("format") == MANIFEST_FORMAT else None


def missing(path: Path, arrays: dict[str, list], clip_chunks: dict[str, set[int]] | None = None):
    """{array: [missing chunk keys]} of the expected chunks, by listing (no chunk is read)."""
    out = {}
    for name, ranges in arrays.items():
        wanted = None if clip_chunks is None else clip_chunks.get(name)
        present = listed(path, name)
        lost = [k for k in keys(ranges, wanted) if k not in present]
        if lost:
            out[name] = lost
    return out


def done_clip_chunks(meta: dict[str, ArrayMeta], complete: np.ndarray) -> dict[str, set[int]]:
    """Per array along clip, the chunk indices whose clips are all marked complete."""
    out = {}
    for name, m in meta.items():
        if m.dims and m.dims[0] == "clip":
            out[name] = {
                i for i in range(m.grid[0]) if complete[m.clips_of(i).start : m.clips_of(i).stop].all()
            }
    return out


# ---- naming what is damaged ------------------------------------------------------------------------


def clip_ranges(clips: set[int] | list[int]) -> str:
    """{0,1,2,3,8} → "clips 0–3, 8"."""
    values = sorted(set(clips))
    if not values:
        return "no clips"
    runs, start, prev = [], values[0], values[0]
    for v in values[1:] + [None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        runs.append(f"{start}" if start == prev else f"{start}–{prev}")
        if v is not None:
            start = prev = v
    return f"{'clip' if len(values) == 1 else 'clips'} {', '.join(runs)}"


def clips_of_keys(m: ArrayMeta | None, chunk_keys: list[str]) -> set[int]:
    if m is None or not m.dims or m.dims[0] != "clip":
        return set()
    out: set[int] = set()
    for key in chunk_keys:
        parts = key.split("/")
        if len(parts) > 1 and parts[1].isdigit():
            out.update(m.clips_of(int(parts[1])))
    return out


def damage_text(meta: dict[str, ArrayMeta], damaged: dict[str, list[str]]) -> str:
    """ "loss (clips 4–7), layer (coordinate)" for {array: [keys]}."""
    parts = []
    for name, chunk_keys in damaged.items():
        clips = clips_of_keys(meta.get(name), chunk_keys)
        parts.append(f"{name} ({clip_ranges(clips) if clips else 'coordinate'})")
    return ", ".join(parts)


def chunk_text(path: Path, key: str) -> str:
    """ "loss/c/1/0 (clips 4–7)" for a store key, from the array's metadata."""
    name = key.split("/c/")[0] if "/c/" in key else key.rsplit("/c", 1)[0]
    try:
        m = array_meta(path).get(name)
    except (OSError, ValueError, KeyError):
        m = None
    clips = clips_of_keys(m, [key[len(name) + 1 :]])
    return f"{key} ({clip_ranges(clips)})" if clips else key


def redo_command(attrs: dict[str, Any], path: Path) -> str:
    """The `toto-lens extract` command that wrote the store (and continues or repairs it)."""
    import shlex

    req = _attr(attrs, "request") or {}
    data = _attr(attrs, "dataset") or {}
    ckpt = _attr(attrs, "checkpoint") or {}
    acts, attn = list(req.get("acts", [])), list(req.get("attn", []))
    words = ["toto-lens", "extract", "--ckpt", _ckpt_arg(ckpt)]
    if data.get("source"):
        words += ["--data", str(data["source"]), "--split", str(data.get("split", "val"))]
    if data.get("clips"):
        words += ["--clips", str(data["clips"])]
    words += ["--batch-size", str(req.get("batch_size", 16))]
    words += ["--layers", ",".join(map(str, req.get("layers", []))) or "all"]
    words += ["--acts", ",".join(acts) or "none"]
    if "token" in acts and req.get("token_clips") is not None:
        words += ["--token-clips", str(req["token_clips"])]
    words += ["--attn", ",".join(attn) or "none"]
    if "pattern" in attn:
        words += ["--pattern-clips", str(req.get("pattern_clips", 0))]
    words += ["--dtype", str(req.get("dtype", "float16")), "--out", str(path)]
    return shlex.join(words)


def _ckpt_arg(ckpt: dict[str, Any]) -> str:
    """The checkpoint's registry name when it resolves to the recorded folder, else the folder."""
    name, folder = ckpt.get("name"), ckpt.get("path")
    if name and folder:
        try:
            from toto_lens.checkpoints import resolve_checkpoint

            if Path(resolve_checkpoint(name)).resolve() == Path(folder).resolve():
                return str(name)
        except Exception:  # noqa: BLE001 - any failure to resolve: name the folder instead
            pass
    return str(folder or name or "CHECKPOINT")


# ---- checksums -----------------------------------------------------------------------------------


def checksum_ok(data) -> bool:
    """Whether a chunk's bytes end with the crc32c of the bytes before them (zarr's `crc32c` codec)."""
    import google_crc32c

    raw = data.view(np.uint8).reshape(-1) if isinstance(data, np.ndarray) else np.frombuffer(data, np.uint8)
    if raw.size < 4:
        return False
    return np.uint32(google_crc32c.value(raw[:-4])).tobytes() == raw[-4:].tobytes()


def _local_store_class():
    from zarr.storage import LocalStore

    class CheckedStore(LocalStore):
        """A zarr `LocalStore` that checks each chunk's checksum as it is read and names a bad chunk
        (array, key, clips) in a `ChunkError`, instead of the codec's anonymous ValueError. Only the
        chunks of arrays whose last codec is `crc32c` are checked."""

        async def get(self, key, prototype=None, byte_range=None):
            buf = await super().get(key, prototype, byte_range)
            chunk = buf is not None and byte_range is None and not key.endswith("zarr.json")
            if chunk and self._has_crc(key) and not checksum_ok(buf.as_numpy_array()):
                raise ChunkError(corrupt_message(Path(self.root), key))
            return buf

        def _has_crc(self, key: str) -> bool:
            name = key.split("/c/")[0] if "/c/" in key else key.rsplit("/", 1)[0]
            known = self.__dict__.setdefault("_crc", {})
            if name not in known:
                try:
                    meta = json.loads((Path(self.root) / name / "zarr.json").read_text())
                    known[name] = (meta.get("codecs") or [{}])[-1].get("name") == "crc32c"
                except (OSError, ValueError, AttributeError):
                    known[name] = False
            return known[name]

    return CheckedStore


_CHECKED: list[type] = []


def checked_store(path: Path, read_only: bool = True):
    """A `CheckedStore` (see `_local_store_class`) on `path`."""
    if not _CHECKED:
        _CHECKED.append(_local_store_class())
    return _CHECKED[0](str(path), read_only=read_only)


def corrupt_message(path: Path, key: str) -> str:
    return (
        f"{path}: chunk {chunk_text(path, key)} is corrupt: its bytes do not match their checksum "
        f"(truncated or altered on disk); `toto-lens verify --cache {path} --repair` marks it for "
        "extraction again and prints the command that redoes it"
    )
