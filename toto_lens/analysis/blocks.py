"""Reading a cache a block at a time, so that analyses work on stores larger than memory (DESIGN.md, Scale).

A cache opened with `open_cache` or `xarray.open_zarr` is dask-backed: nothing is read until values are
asked for. The analyses ask for one block at a time, of at most `block_bytes` bytes: a run of clips
(whole store chunks, so that each chunk is read once a pass, then handed on in pieces that the
computation on them, in float64 and int64, keeps within `block_bytes` too), a run of positions (every
clip), or a group of layers. A cache that fits in one block is read and computed at once, as the
analyses always did; an in-memory (numpy-backed) Dataset is cut the same way.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from toto_lens.analysis import AnalysisError

BLOCK_BYTES = 256 << 20  # what one step of an analysis holds of the cache (a study's default)


def check_block_bytes(block_bytes: object) -> int:
    """`block_bytes` as a positive int, else one AnalysisError line."""
    if isinstance(block_bytes, bool) or not isinstance(block_bytes, int | np.integer) or block_bytes < 1:
        raise AnalysisError(f"block_bytes must be a positive number of bytes, got {block_bytes!r}")
    return int(block_bytes)


def _runs(sizes: list[int], per_item: int, block_bytes: int) -> list[slice]:
    """Consecutive slices over runs of pieces of `sizes` items each, every run within `block_bytes`
    (`per_item` bytes an item) or a single piece."""
    out, start, length = [], 0, 0
    for size in sizes:
        if length and (length + size) * per_item > block_bytes:
            out.append(slice(start, start + length))
            start, length = start + length, 0
        length += size
    if length:
        out.append(slice(start, start + length))
    return out


def clip_blocks(ds: xr.Dataset, names: tuple[str, ...], block_bytes: int) -> list[slice]:
    """Slices of `clip` covering every clip once, each holding at most `block_bytes` of the variables
    `names` as stored, or one store chunk of clips.

    Blocks follow the dask chunks of the first variable along `clip` (the store's write batches), so a
    pass over the blocks reads each chunk once; a numpy-backed variable is cut into equal blocks."""
    block_bytes = check_block_bytes(block_bytes)
    clips = ds.sizes.get("clip", 0)
    per_clip = sum(ds[v].size // max(1, ds[v].sizes["clip"]) * ds[v].dtype.itemsize for v in names)
    chunks = ds[names[0]].chunksizes.get("clip")
    if chunks is None:
        step = max(1, block_bytes // max(1, per_clip))
        chunks = [min(step, clips - i) for i in range(0, clips, step)]
    return _runs(list(chunks), per_clip, block_bytes)


def _pieces(ds: xr.Dataset, names: tuple[str, ...], block_bytes: int, compute_bytes: int):
    """(block, pieces of it) of `read_clips`."""
    per_clip = sum(ds[v].size // max(1, ds[v].sizes["clip"]) for v in names) * compute_bytes
    for block in clip_blocks(ds, names, block_bytes):
        yield block, steps(block.stop - block.start, per_clip, block_bytes)


def read_clips(ds: xr.Dataset, names: tuple[str, ...], block_bytes: int, compute_bytes: int):
    """Every clip's values of the (clip, …) variables `names`, in pieces: yields (clip slice, {name: values
    as stored}). A block of whole chunks (`clip_blocks`) is read at once and handed on in pieces of at
    most `block_bytes` at `compute_bytes` a value (what the caller's computation holds), at least a clip."""
    arrays = {name: ds[name].transpose("clip", ...) for name in names}
    for block, pieces in _pieces(ds, names, block_bytes, compute_bytes):
        read = {name: values(a.isel(clip=block)) for name, a in arrays.items()}
        for piece in pieces:
            at = slice(block.start + piece.start, block.start + piece.stop)
            yield at, {name: v[piece] for name, v in read.items()}


def count_pieces(ds: xr.Dataset, names: tuple[str, ...], block_bytes: int, compute_bytes: int) -> int:
    """How many pieces `read_clips` yields, without reading anything."""
    return sum(len(pieces) for _, pieces in _pieces(ds, names, block_bytes, compute_bytes))


def values(array: xr.DataArray, dtype=None) -> np.ndarray:
    """The values of a (small) selection, read now, C-contiguous, in `dtype` when given."""
    return np.ascontiguousarray(np.asarray(array.values, dtype=dtype))


def steps(n: int, per_item: int, block_bytes: int) -> list[slice]:
    """Runs of consecutive items (layers, positions, clips) of at most `block_bytes` at `per_item` bytes
    each, at least one item a run."""
    return _runs([1] * n, per_item, check_block_bytes(block_bytes))


class KeyCounts:
    """Counts of int64 keys gathered block by block: each block's (unique keys, counts) are merged into
    sorted unique keys with summed counts, in batches so that many small blocks cost one sort each."""

    def __init__(self) -> None:
        self.keys = np.empty(0, np.int64)
        self.counts = np.empty(0, np.int64)
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._waiting = 0

    def add(self, keys: np.ndarray, counts: np.ndarray) -> None:
        self._pending.append((np.asarray(keys, np.int64), np.asarray(counts, np.int64)))
        self._waiting += len(keys)
        if self._waiting > max(len(self.keys), 1 << 16):
            self._merge()

    def _merge(self) -> None:
        if not self._pending:
            return
        if not len(self.keys) and len(self._pending) == 1:  # one block: its counts as they are
            self.keys, self.counts = self._pending[0]
        else:
            keys = np.concatenate([self.keys, *(k for k, _ in self._pending)])
            counts = np.concatenate([self.counts, *(c for _, c in self._pending)])
            order = np.argsort(keys, kind="stable")
            keys, counts = keys[order], counts[order]
            start = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]])) if len(keys) else []
            self.keys = keys[start]
            self.counts = np.add.reduceat(counts, start) if len(keys) else counts
        self._pending, self._waiting = [], 0

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(keys ascending, their counts), both int64."""
        self._merge()
        return self.keys, self.counts
