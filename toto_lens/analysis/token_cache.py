"""The token side of an activation cache, as the loss analyses read it: which clips count (complete, of a
kind), where each position sits in the frame grid, and the vocabulary the token ids come from.

Shared by `redundancy`, `predictors`, `ngrams` and the studies that select clips the same way.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from toto_lens.analysis import AnalysisError
from toto_lens.config import NUM_SPECIAL
from toto_lens.data.labels import KINDS
from toto_lens.io import dict_attr

EXTRACT = "extract it with `toto-lens extract --ckpt NAME`"


def require(ds: object, *names: str) -> xr.Dataset:
    """ds itself, once it is a Dataset holding every variable named."""
    if not isinstance(ds, xr.Dataset):
        raise AnalysisError(f"expected an activation cache (xarray.Dataset), got {type(ds).__name__}")
    for name in names:
        if name not in ds.variables:
            raise AnalysisError(f"the cache has no {name}; {EXTRACT}")
    return ds


def select_kind(ds: xr.Dataset, kind: str | int | None) -> xr.Dataset:
    """The clips of one kind (`"video"`/0 or `"images"`/1, the `kind` coordinate); None keeps all."""
    if kind is None:
        return ds
    code = KINDS.index(kind) if kind in KINDS else kind
    if code not in range(len(KINDS)):
        raise AnalysisError(f"kind must be one of {', '.join(KINDS)} (or 0, 1), got {kind!r}")
    if "kind" not in ds.variables:
        raise AnalysisError(f"the cache has no kind coordinate to select {kind!r} clips by; {EXTRACT}")
    keep = np.flatnonzero(np.asarray(ds["kind"].values) == code)
    if keep.size == 0:
        name = KINDS[code]
        raise AnalysisError(
            f"the cache holds no {name} clips (kind == {code}); select all clips instead (kind=None, no --kind)"
        )
    return ds.isel(clip=keep)


def grid_of(ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pos_frame, row, col) of every position, −1 on special tokens (the cache's coordinates)."""
    missing = [n for n in ("pos_frame", "row", "col") if n not in ds.variables]
    if missing:
        raise AnalysisError(f"the cache has no {', '.join(missing)} coordinate on position; {EXTRACT}")
    f, r, c = (np.asarray(ds[n].values, dtype=np.int64) for n in ("pos_frame", "row", "col"))
    if f.shape != (ds.sizes.get("position", -1),) or not (f >= 0).any():
        raise AnalysisError(f"pos_frame must be 1-d over position and mark visual tokens; {EXTRACT}")
    return f, r, c


def previous_frame_position(f: np.ndarray, r: np.ndarray, c: np.ndarray) -> np.ndarray:
    """For each position, the position of the same (row, col) one frame earlier; −1 where there is none."""
    # Looked up from the coordinates rather than p − R·C, so no layout is assumed beyond what they say.
    where = {(int(a), int(b), int(d)): p for p, (a, b, d) in enumerate(zip(f, r, c, strict=True)) if a >= 0}
    return np.array(
        [where.get((int(a) - 1, int(b), int(d)), -1) for a, b, d in zip(f, r, c, strict=True)], dtype=np.int64
    )


def vocabulary(ds: xr.Dataset, largest: int, vocab_size: int | None = None) -> tuple[int, int, str]:
    """(vocab_size incl. special ids, code offset, where the size came from) of the cache's token ids;
    `largest` is the largest id in the cache, the size's lower bound when nothing else gives it."""
    cfg = dict_attr(ds.attrs, "model_config")
    offset, source = NUM_SPECIAL, "given"
    if cfg:
        ids = [cfg.get(k) for k in ("pad_id", "video_start_id", "end_id", "image_start_id")]
        offset = max([i for i in ids if isinstance(i, int)], default=NUM_SPECIAL - 1) + 1
        if isinstance(cfg.get("first_code_id"), int):
            offset = cfg["first_code_id"]
        if vocab_size is None and isinstance(cfg.get("vocab_size"), int):
            vocab_size, source = cfg["vocab_size"], "model_config"
    if vocab_size is None:
        # Without the model config the codebook size is unknown; the largest id seen is a lower bound,
        # which makes the smoothed baselines slightly optimistic.
        vocab_size, source = int(largest) + 1, "observed"
    return int(vocab_size), int(offset), source


def complete_clips(ds: xr.Dataset) -> xr.Dataset:
    """The clips marked written in `complete` (all of them when the variable is absent)."""
    if "complete" not in ds.variables or ds["complete"].dims != ("clip",):
        return ds
    # An interrupted extraction leaves unwritten clips reading fill values (token 0, NaN loss).
    done = np.flatnonzero(np.asarray(ds["complete"].values) == 1)
    if done.size == 0:
        raise AnalysisError(f"no clip of the cache is complete yet; {EXTRACT} (it resumes where it stopped)")
    return ds if done.size == ds.sizes["clip"] else ds.isel(clip=done)


def prepared(ds: object, kind: str | int | None, *names: str) -> xr.Dataset:
    """The complete clips of one kind (all kinds when None) of a cache that has `names`; refuses an empty one."""
    ds = select_kind(complete_clips(require(ds, *names)), kind)
    if ds.sizes.get("clip", 0) == 0:
        raise AnalysisError("the cache holds no clips")
    return ds


def position_coords(ds: xr.Dataset) -> dict:
    """The position coordinate and its grid (pos_frame, row, col), for a result over positions."""
    f, r, c = grid_of(ds)
    positions = ds["position"].values if "position" in ds.coords else np.arange(f.size)
    return {
        "position": positions,
        "pos_frame": ("position", f),
        "row": ("position", r),
        "col": ("position", c),
    }


NATS = {"units": "nats"}
