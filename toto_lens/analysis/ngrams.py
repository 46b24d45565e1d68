"""n-gram statistics of visual tokens: how tokenizers differ in the token combinations they use.

Follows the Toto appendix A.9 (Figs. 12-13) and PROTOCOLS.md: tokenize images or frames, take raster-order
n-grams *within* each frame (a window never spans two frames), count them, and compare tokenizers by the
rank-frequency curve, the number of distinct n-grams against the V^n possible ones, the entropy, and the
codebook usage (dead codes).

Each n-gram is encoded as one int64 key, sum_k id_k * V^(n-1-k) (base-V digits, first token most
significant), so counting is one `np.bincount` or `np.unique` over an int array and keys sort in the
same order as the n-gram tuples. Input is visual codes in [0, V): strip special tokens and the code
offset before calling, or count an activation cache's `tokens` with `cache_ngram_stats`, which does.

Counts add up over frames, so ids are counted a chunk of frames at a time and the counts merged: an
array larger than `block_bytes` (a memory-mapped token shard) is cut into chunks, an iterable of arrays
is counted as it comes, and a cache is read a block of clips at a time, so none is ever held whole.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain

import numpy as np
import xarray as xr

from toto_lens.analysis import AnalysisError, concat_outer
from toto_lens.analysis.blocks import BLOCK_BYTES, KeyCounts, check_block_bytes, count_pieces, read_clips
from toto_lens.io import dict_attr
from toto_lens.progress import Progress, report

_INT64_MAX = int(np.iinfo(np.int64).max)
# A dense count table wins over sorting (np.unique) by 10-50x while it stays small next to the keys
# themselves; past 2^24 entries (128 MB of int64) sorting is the safer choice whatever the input size.
_DENSE_MIN = 1 << 20
_DENSE_MAX = 1 << 24


def _as_count(value: object, what: str) -> int:
    """A Python int from any integer (numpy ones included), refusing bools and floats."""
    if isinstance(value, (bool, np.bool_)):
        raise AnalysisError(f"{what} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise AnalysisError(f"{what} must be an integer, got {value!r}") from None


def _check_vocab(vocab_size: object) -> int:
    vocab = _as_count(vocab_size, "vocab_size")
    if vocab <= 0:
        raise AnalysisError(f"vocab_size must be positive, got {vocab}")
    return vocab


def _check_ids(ids: object, vocab: int) -> np.ndarray:
    """Token ids as an integer array [frame, row, col], every id a visual code in [0, vocab)."""
    arr = np.asarray(ids)
    if arr.ndim != 3:
        raise AnalysisError(
            f"token ids must be an array [frame, row, col], got {arr.ndim} dimension(s) of shape {arr.shape}"
        )
    if arr.dtype.kind not in "iu":
        raise AnalysisError(f"token ids must have an integer dtype, got {arr.dtype}")
    if arr.size == 0:
        raise AnalysisError(f"token ids hold no tokens (shape {arr.shape})")
    low, high = int(arr.min()), int(arr.max())
    if low < 0 or high >= vocab:
        raise AnalysisError(
            f"token ids must lie in [0, {vocab}) (visual codes, no special tokens), got ids in [{low}, {high}]"
        )
    return arr


def _check_n(n: object, tokens_per_frame: int, vocab: int) -> int:
    size = _as_count(n, "n")
    if size < 1 or size > tokens_per_frame:
        raise AnalysisError(f"n must lie in [1, {tokens_per_frame}] (tokens per frame), got {size}")
    if vocab**size > _INT64_MAX:
        raise AnalysisError(
            f"{size}-grams over {vocab} codes do not fit one int64 key ({vocab}^{size} > 2^63 - 1); "
            "use a smaller n"
        )
    return size


def _counts(arr: np.ndarray, n: int, vocab: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts of the n-gram keys of checked ids [frame, row, col]; keys ascending."""
    frames = arr.shape[0]
    flat = arr.reshape(frames, -1).astype(np.int64, copy=False)  # (frame, token) in raster order
    width = flat.shape[1] - n + 1  # windows per frame: slicing per frame keeps windows inside it
    keys = flat[:, :width].copy()  # (frame, window); Horner's rule, the largest key is V^n - 1
    for k in range(1, n):
        keys *= vocab
        keys += flat[:, k : k + width]
    keys = keys.ravel()
    possible = vocab**n
    if possible <= max(_DENSE_MIN, 2 * keys.size) and possible <= _DENSE_MAX:
        table = np.bincount(keys, minlength=possible)
        present = np.flatnonzero(table)
        return present.astype(np.int64), table[present].astype(np.int64)
    unique, counts = np.unique(keys, return_counts=True)
    return unique.astype(np.int64), counts.astype(np.int64)


def ngram_counts(ids: np.ndarray, n: int, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Count the raster-order n-grams inside each frame of `ids` [frame, row, col].

    Returns `(keys, counts)`, both int64, keys sorted ascending; key = sum_k id_k * V^(n-1-k), see
    `decode_ngram_keys` for the inverse. Each frame of R×C tokens gives R·C - n + 1 windows.
    """
    vocab = _check_vocab(vocab_size)
    arr = _check_ids(ids, vocab)
    size = _check_n(n, arr.shape[1] * arr.shape[2], vocab)
    return _counts(arr, size, vocab)


def decode_ngram_keys(keys: np.ndarray, n: int, vocab_size: int) -> np.ndarray:
    """Token ids [K, n] of n-gram keys (the inverse of the encoding used by `ngram_counts`)."""
    vocab = _check_vocab(vocab_size)
    size = _as_count(n, "n")
    if size < 1:
        raise AnalysisError(f"n must be at least 1, got {size}")
    if vocab**size > _INT64_MAX:
        raise AnalysisError(f"{size}-grams over {vocab} codes do not fit one int64 key; use a smaller n")
    arr = np.asarray(keys)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise AnalysisError(f"keys must be a 1-d integer array, got dtype {arr.dtype} and shape {arr.shape}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= vocab**size):
        raise AnalysisError(f"keys must lie in [0, {vocab}^{size}), got [{int(arr.min())}, {int(arr.max())}]")
    # Most significant digit first, as encoded by `_counts`.
    powers = np.array([vocab ** (size - 1 - k) for k in range(size)], dtype=np.int64)
    return (arr[:, None] // powers[None, :]) % vocab  # (K, n)


def _entropy_bits(counts: np.ndarray) -> float:
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


class _Tally:
    """Counts of the n-grams of one n over chunks of frames: a dense table while V^n is small, else the
    sorted keys of each chunk merged (`KeyCounts`)."""

    def __init__(self, n: int, vocab: int) -> None:
        self.n, self.vocab = n, vocab
        self.dense = np.zeros(vocab**n, dtype=np.int64) if vocab**n <= _DENSE_MIN else None
        self.sparse = KeyCounts()

    def add(self, arr: np.ndarray) -> int:
        """Count a chunk's n-grams; returns how many distinct ones it holds."""
        keys, counts = _counts(arr, self.n, self.vocab)
        if self.dense is not None:
            self.dense[keys] += counts
        else:
            self.sparse.add(keys, counts)
        return len(keys)

    def counts(self) -> np.ndarray:
        if self.dense is not None:
            return self.dense[self.dense > 0]
        return self.sparse.result()[1]


def _frame_chunks(ids: object, block_bytes: int) -> tuple[Iterator, int | None]:
    """(chunks of ids [frame, row, col], their number when known). An array is cut into runs of frames
    whose keys fit `block_bytes` (views: a memory-mapped array is read a chunk at a time); a list of
    arrays, or any other iterable that is not one array's nested lists, is taken chunk by chunk."""
    chunked = isinstance(ids, list | tuple) and len(ids) > 0 and all(isinstance(x, np.ndarray) for x in ids)
    if (
        not chunked
        and isinstance(ids, Iterable)
        and not isinstance(ids, np.ndarray | list | tuple | str | bytes)
    ):
        chunked = True  # a generator, or the blocks of a cache
    if chunked:
        return iter(ids), len(ids) if hasattr(ids, "__len__") else None
    arr = ids if isinstance(ids, np.ndarray) else np.asarray(ids)
    if arr.ndim != 3:
        _check_ids(arr, 1)  # the one-line error for an array that is not [frame, row, col]
    per_frame = max(1, int(np.prod(arr.shape[1:]))) * 8 * 3  # int64 ids, their keys, a table's share
    step = max(1, block_bytes // per_frame)
    starts = range(0, max(1, arr.shape[0]), step)
    return iter([arr[i : i + step] for i in starts]), len(starts)


def ngram_stats(
    ids: np.ndarray | Iterable[np.ndarray],
    vocab_size: int,
    ns: Sequence[int] = (1, 2, 3),
    name: str = "tokenizer",
    progress: Progress | None = None,
    *,
    block_bytes: int = BLOCK_BYTES,
) -> xr.Dataset:
    """Rank-frequency curves and summary numbers of the n-grams of one tokenizer's ids [frame, row, col].

    Dimensions `n` (the n-gram length) and `rank` (1 = most frequent; NaN past the last distinct n-gram
    of a given n). Variables: `frequency`, `count` (n, rank); `distinct`, `possible` (V^n), `coverage`
    (distinct / possible), `entropy` (bits), `total` (number of n-grams) per n; `dead_codes` and
    `codebook_usage` over all ids. Attributes: name, vocab_size, frames, grid [rows, cols]. `progress`
    (`toto_lens.progress`) hears of each n counted, as task `n-grams <name>` (of each chunk, when ids
    come in several).

    `ids` may also be an iterable of such arrays (chunks of frames of one grid), each counted and
    released before the next; an array larger than `block_bytes` is counted a chunk of frames at a time.
    The counts, and so the result, are the same either way.
    """
    vocab = _check_vocab(vocab_size)
    chunks, total_chunks = _frame_chunks(ids, check_block_bytes(block_bytes))
    first = next(chunks, None)
    if first is None:
        raise AnalysisError("token ids hold no tokens (no chunk of frames was given)")
    arr = _check_ids(first, vocab)
    _, rows, cols = arr.shape
    if isinstance(ns, (str, bytes)) or not isinstance(ns, Sequence) or len(ns) == 0:
        raise AnalysisError(f"ns must be a non-empty sequence of n-gram lengths, got {ns!r}")
    sizes = sorted(_check_n(n, rows * cols, vocab) for n in ns)
    if len(set(sizes)) != len(sizes):
        raise AnalysisError(f"ns must not repeat a length, got {list(ns)}")

    tallies = [_Tally(size, vocab) for size in sizes]
    used = np.zeros(vocab, dtype=np.int64)  # codebook usage counts every id, whatever ns holds
    frames, task = 0, f"n-grams {name}"
    for i, chunk in enumerate(chain([arr], chunks)):
        chunk = arr if i == 0 else _check_ids(chunk, vocab)
        if chunk.shape[1:] != (rows, cols):
            raise AnalysisError(
                f"every chunk of ids must have frames of {rows}×{cols} tokens, got {chunk.shape}"
            )
        frames += chunk.shape[0]
        for j, tally in enumerate(tallies):
            distinct = tally.add(chunk)
            if total_chunks == 1:
                report(progress, task, j + 1, len(sizes), "lengths", n=tally.n, distinct=distinct)
        used += np.bincount(chunk.ravel(), minlength=vocab)
        if total_chunks != 1:
            report(progress, task, i + 1, total_chunks, "chunks", frames=frames)
    ranked = [np.sort(t.counts())[::-1] for t in tallies]  # descending: rank 1 first
    longest = max(len(c) for c in ranked)
    count = np.full((len(sizes), longest), np.nan)  # float: NaN pads the shorter curves
    for i, c in enumerate(ranked):
        count[i, : len(c)] = c
    total = np.array([c.sum() for c in ranked], dtype=np.int64)
    distinct = np.array([len(c) for c in ranked], dtype=np.int64)
    possible = np.array([float(vocab) ** s for s in sizes])
    used_codes = int(np.count_nonzero(used))

    coords = {"n": np.array(sizes, dtype=np.int64), "rank": np.arange(1, longest + 1, dtype=np.int64)}
    return xr.Dataset(
        {
            "frequency": (("n", "rank"), count / total[:, None], {"long_name": "relative frequency"}),
            "count": (("n", "rank"), count, {"long_name": "occurrences"}),
            "distinct": ("n", distinct, {"long_name": "distinct n-grams"}),
            "possible": ("n", possible, {"long_name": "possible n-grams (V^n)"}),
            "coverage": ("n", distinct / possible, {"long_name": "distinct / possible"}),
            "entropy": ("n", np.array([_entropy_bits(c) for c in ranked]), {"units": "bits"}),
            "total": ("n", total, {"long_name": "n-grams counted"}),
            "dead_codes": ((), vocab - used_codes, {"long_name": "codes never used"}),
            "codebook_usage": ((), used_codes / vocab, {"long_name": "fraction of codes used"}),
        },
        coords=coords,
        attrs={"name": str(name), "vocab_size": vocab, "frames": int(frames), "grid": [int(rows), int(cols)]},
    )


_CODE_BYTES = 24  # a token's int64 code, its n-gram keys and a count table's share, while counting


class _CacheChunks:
    """The visual codes of a cache's clips, a piece of clips at a time, as frames [frame, row, col]."""

    def __init__(self, ds: xr.Dataset, block_bytes: int, order: np.ndarray, offset: int, grid) -> None:
        self.ds, self.block_bytes, self.order, self.offset, self.grid = ds, block_bytes, order, offset, grid

    def __len__(self) -> int:
        return count_pieces(self.ds, ("tokens",), self.block_bytes, _CODE_BYTES)

    def __iter__(self) -> Iterator[np.ndarray]:
        for _, v in read_clips(self.ds, ("tokens",), self.block_bytes, _CODE_BYTES):
            yield (v["tokens"][:, self.order].astype(np.int64) - self.offset).reshape(-1, *self.grid)


def cache_ngram_stats(
    ds: xr.Dataset,
    ns: Sequence[int] = (1, 2, 3),
    *,
    name: str | None = None,
    kind: str | int | None = None,
    vocab_size: int | None = None,
    block_bytes: int = BLOCK_BYTES,
    progress: Progress | None = None,
) -> xr.Dataset:
    """`ngram_stats` of the visual tokens of an activation cache's `tokens` (clip, position).

    Each clip's visual positions become its frames [frame, row, col] (the cache's `pos_frame`, `row`,
    `col`), codes are the ids less the code offset of the cache's model config, and `vocab_size` (special
    ids included, as in `redundancy.predictor_losses`) overrides its size there. Only clips marked
    complete, of one `kind` when given. The store is read `block_bytes` at a time, a block of clips (whole
    chunks) per step, and the counts of the blocks merged. `name` defaults to the cache's dataset name.
    """
    from toto_lens.analysis.token_cache import grid_of, prepared, vocabulary

    ds = prepared(ds, kind, "tokens")
    f, r, c = grid_of(ds)
    visual = np.flatnonzero(f >= 0)
    grid = (int(r[visual].max()) + 1, int(c[visual].max()) + 1)
    order = visual[np.lexsort((c[visual], r[visual], f[visual]))]  # frame-major raster order
    cells = np.unique(np.stack([f[order], r[order], c[order]]), axis=1).shape[1]
    if cells != len(order) or len(order) != (int(f.max()) + 1) * grid[0] * grid[1]:
        raise AnalysisError(
            "the cache's visual positions (pos_frame, row, col) do not make whole frames of "
            f"{grid[0]}×{grid[1]} tokens, so they have no raster order to count n-grams in"
        )
    largest = 0
    if vocab_size is None and not isinstance(dict_attr(ds.attrs, "model_config").get("vocab_size"), int):
        largest = max(int(v["tokens"].max()) for _, v in read_clips(ds, ("tokens",), block_bytes, 8))
    vocab, offset, _ = vocabulary(ds, largest, vocab_size)
    label = name if name is not None else str(dict_attr(ds.attrs, "dataset").get("name", "")) or "cache"
    chunks = _CacheChunks(ds, block_bytes, order, offset, grid)
    return ngram_stats(chunks, vocab - offset, ns, label, progress, block_bytes=block_bytes)


def compare_ngram_stats(stats: Sequence[xr.Dataset]) -> xr.Dataset:
    """Stack `ngram_stats` results along a new `tokenizer` dimension, named by their `name` attribute.

    `n` and `rank` are outer-joined: a tokenizer without some n, or with fewer distinct n-grams, gets NaN
    there. Per-tokenizer attributes become coordinates along `tokenizer`: vocab_size, frames, grid ("RxC").
    """
    if isinstance(stats, xr.Dataset) or len(stats) == 0:
        raise AnalysisError("compare_ngram_stats needs a non-empty list of ngram_stats results")
    names = []
    for i, ds in enumerate(stats):
        if not isinstance(ds, xr.Dataset) or "tokenizer" in ds.dims or "name" not in ds.attrs:
            raise AnalysisError(
                f"item {i} is not a single ngram_stats result (a Dataset with a name attribute)"
            )
        names.append(str(ds.attrs["name"]))
    if len(set(names)) != len(names):
        raise AnalysisError(
            f"tokenizer names must differ to be compared, got {names}; pass name= to ngram_stats"
        )
    stacked = [
        ds.expand_dims(tokenizer=[label]).assign_coords(
            vocab_size=("tokenizer", [int(ds.attrs["vocab_size"])]),
            frames=("tokenizer", [int(ds.attrs["frames"])]),
            grid=("tokenizer", ["x".join(str(v) for v in ds.attrs["grid"])]),
        )
        for label, ds in zip(names, stats, strict=True)
    ]
    out = concat_outer(stacked, "tokenizer")
    out.attrs = {"tokenizers": names}
    return out
