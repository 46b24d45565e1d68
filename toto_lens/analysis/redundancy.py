"""Frame-wise loss redundancy: the model's loss per position and per frame, read against trivial predictors.

Follows the Toto appendix A.3 (Fig. 10) and PROTOCOLS.md ("Frame-wise loss redundancy"): the mean
per-token loss at each position of the context and per frame; the paper finds the first frame's loss
high and the later frames' lower. Beside it, the loss of predictors that see the tokens only, so that a
low loss is read against what copying alone gives:

`copy` (the token at the same (row, col) one frame earlier as the only context), `unigram` and
`bigram` (raster order), Witten-Bell smoothed: see `toto_lens.analysis.predictors`. `frame_copy_accuracy`
is the plain copy: the fraction of tokens equal to the token one frame earlier (no fitting, all clips).

Fit set: the baselines are fitted on a random half of the clips (by clip, seeded) and evaluated, with
the model beside them, on the other half (`fit="half"`); `fit="all"` fits and evaluates in-sample, which
also happens when only one clip is there (attribute `baseline_fit` says which). The model's own curves
(`position_loss`, `frame_loss` and their spread) use every selected clip.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import xarray as xr

from toto_lens.analysis.blocks import BLOCK_BYTES, read_clips, steps, values
from toto_lens.analysis.predictors import PREDICTORS, evaluation_blocks, fit_attrs, fit_baselines
from toto_lens.analysis.token_cache import NATS, grid_of, position_coords, prepared, previous_frame_position

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def _spread(values: np.ndarray, quantiles: Sequence[float]) -> tuple[np.ndarray, ...]:
    """Mean, std (ddof 0: the spread of these clips), quantiles and count over axis 0, NaN skipped."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (position 0) stay NaN
        mean = np.nanmean(values, axis=0)
        std = np.nanstd(values, axis=0)
        qs = np.nanquantile(values, list(quantiles), axis=0)
    return mean, std, qs, np.isfinite(values).sum(axis=0)


def _frame_means(values: np.ndarray, pos_frame: np.ndarray, frames: int) -> np.ndarray:
    """(..., position) → (..., frame): the mean over each frame's visual tokens, NaN skipped."""
    onehot = (pos_frame[:, None] == np.arange(frames)[None, :]).astype(np.float64)  # (position, frame)
    finite = np.isfinite(values)
    sums = np.where(finite, values, 0.0) @ onehot
    counts = finite.astype(np.float64) @ onehot
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


# Bytes a computation holds per value of the cache it reads (float64 copies and masks): the pieces it
# is handed are `block_bytes` at this rate.
_SPREAD_BYTES = 24


def _by_clip(ds: xr.Dataset, name: str) -> xr.DataArray:
    return ds[name].transpose("clip", "position")


def loss_by_position(
    ds: xr.Dataset,
    *,
    kind: str | int | None = None,
    quantiles: Sequence[float] = QUANTILES,
    block_bytes: int = BLOCK_BYTES,
) -> xr.Dataset:
    """The model's loss at each position over clips: `position_loss` (mean), `_std`, `_quantile`, `position_count`.

    A position's quantiles need the loss of every clip there, so a cache larger than `block_bytes` is read
    a block of positions at a time (each block a pass over the store's chunks)."""
    ds = prepared(ds, kind, "loss")
    loss = _by_clip(ds, "loss")
    clips, positions = loss.shape
    mean, std = np.empty(positions), np.empty(positions)
    qs, count = np.empty((len(quantiles), positions)), np.empty(positions, dtype=np.int64)
    # Read as stored, computed in float64 a few positions at a time (at least two: numpy sums a lone
    # column pairwise and a column of a wider array clip by clip, and the latter is what all at once did).
    for block in steps(positions, clips * loss.dtype.itemsize, block_bytes):
        part = values(loss.isel(position=block))
        for cols in steps(part.shape[1], clips * _SPREAD_BYTES, block_bytes):
            sub = part[:, cols].astype(np.float64)
            width = sub.shape[1]
            if width == 1:
                sub = np.repeat(sub, 2, axis=1)
            at = slice(block.start + cols.start, block.start + cols.stop)
            m, sd, q, n = _spread(sub, quantiles)
            mean[at], std[at], qs[:, at], count[at] = m[:width], sd[:width], q[:, :width], n[:width]
    return xr.Dataset(
        {
            "position_loss": ("position", mean, {"long_name": "mean loss over clips", **NATS}),
            "position_loss_std": ("position", std, {"long_name": "std of the loss over clips", **NATS}),
            "position_loss_quantile": (("quantile", "position"), qs, NATS),
            "position_count": ("position", count, {"long_name": "clips with a loss here"}),
        },
        coords={**position_coords(ds), "quantile": np.asarray(quantiles, dtype=np.float64)},
    )


def loss_by_frame(
    ds: xr.Dataset,
    *,
    kind: str | int | None = None,
    quantiles: Sequence[float] = QUANTILES,
    block_bytes: int = BLOCK_BYTES,
) -> xr.Dataset:
    """The model's loss per frame: each clip's mean over the frame's visual tokens, then spread over clips.

    `frame_loss` (mean of the clip means, equal to the token mean when no loss is missing), `_std`,
    `_quantile`, `frame_count` (clips). Special tokens (pos_frame −1) belong to no frame. The clip means
    are taken a block of clips at a time (`block_bytes`).
    """
    ds = prepared(ds, kind, "loss")
    f, _, _ = grid_of(ds)
    frames = int(f.max()) + 1
    pieces = read_clips(ds, ("loss",), block_bytes, _SPREAD_BYTES)
    means = np.concatenate([_frame_means(v["loss"].astype(np.float64), f, frames) for _, v in pieces])
    mean, std, qs, count = _spread(means, quantiles)
    return xr.Dataset(
        {
            "frame_loss": ("frame", mean, {"long_name": "mean loss per frame over clips", **NATS}),
            "frame_loss_std": ("frame", std, {"long_name": "std of the clips' frame means", **NATS}),
            "frame_loss_quantile": (("quantile", "frame"), qs, NATS),
            "frame_count": ("frame", count, {"long_name": "clips with a loss in this frame"}),
        },
        coords={"frame": np.arange(frames), "quantile": np.asarray(quantiles, dtype=np.float64)},
    )


def copy_accuracy(
    ds: xr.Dataset, *, kind: str | int | None = None, block_bytes: int = BLOCK_BYTES
) -> xr.Dataset:
    """Fraction of tokens equal to the token at the same (row, col) one frame earlier, per position and frame.

    Needs no fitting, so it uses every selected clip; NaN on frame 0 and the special tokens. Matches are
    counted a block of clips at a time (`block_bytes`).
    """
    ds = prepared(ds, kind, "tokens")
    f, r, c = grid_of(ds)
    prev = previous_frame_position(f, r, c)
    has = prev >= 0
    matches = np.zeros(int(has.sum()))
    for _, v in read_clips(ds, ("tokens",), block_bytes, _SPREAD_BYTES):
        matches += (v["tokens"][:, has] == v["tokens"][:, prev[has]]).sum(axis=0)
    frames = int(f.max()) + 1
    # Every clip has the same tokens per frame, so the mean over clips of clip means is the token mean.
    by_position = np.full(f.size, np.nan)
    by_position[has] = matches / ds.sizes["clip"]
    by_frame = _frame_means(by_position, f, frames)
    return xr.Dataset(
        {
            "position_copy_accuracy": (
                "position",
                by_position,
                {"long_name": "token == token one frame earlier"},
            ),
            "frame_copy_accuracy": ("frame", by_frame, {"long_name": "token == token one frame earlier"}),
        },
        coords={**position_coords(ds), "frame": np.arange(frames)},
    )


def redundancy(
    ds: xr.Dataset,
    *,
    kind: str | int | None = None,
    fit: str = "half",
    alpha: float = 0.5,
    seed: int = 0,
    quantiles: Sequence[float] = QUANTILES,
    vocab_size: int | None = None,
    block_bytes: int = BLOCK_BYTES,
) -> xr.Dataset:
    """Everything Fig. 10 needs, and the baselines beside it, in one Dataset.

    Per position: `position_loss` (+ `_std`, `_quantile`, `position_count`), `position_copy_accuracy`,
    `position_predictor_loss` (predictor, position). Per frame: the same names with `frame_`.
    `*_predictor_loss` is the token mean over the evaluation clips (the model's row included, so the
    four are compared on the same tokens); the model's own curves use every selected clip.

    Attributes: `first_frame_loss`, `later_frames_loss` (mean of the per-frame means of frames ≥ 1),
    `first_to_later_ratio` (> 1 when later frames are easier), `in_context_score` (last frame minus first
    frame, nats: Olsson et al.'s late-minus-early loss at frame granularity), the same later-frames mean
    per baseline (`later_frames_<predictor>`), and the fit description of `predictor_losses`.

    The cache is read `block_bytes` at a time (blocks of clips; blocks of positions for the quantiles),
    never whole, so a store larger than memory works; the numbers do not depend on the blocks beyond
    the order of float64 sums.
    """
    ds = prepared(ds, kind, "tokens", "loss")
    fitted = fit_baselines(ds, fit, alpha, seed, vocab_size, block_bytes)
    f, _, _ = grid_of(ds)
    frames = int(f.max()) + 1
    # Token means over the evaluation clips: pool the clips, then the positions of each frame.
    sums = np.zeros((len(PREDICTORS), f.size))  # (predictor, position)
    counts = np.zeros((len(PREDICTORS), f.size))
    for block in evaluation_blocks(ds, fitted):  # (predictor, clip, position)
        finite = np.isfinite(block)
        # The running sum goes first and the clips are added to it one by one, as a sum over all the
        # evaluation clips at once adds them: the same float64 result whatever the blocks.
        sums = np.concatenate([sums[:, None], np.where(finite, block, 0.0)], axis=1).sum(axis=1)
        counts += finite.sum(axis=1)
    onehot = (f[:, None] == np.arange(frames)[None, :]).astype(np.float64)  # (position, frame)
    with np.errstate(invalid="ignore", divide="ignore"):
        by_position = np.where(counts > 0, sums / counts, np.nan)
        frame_pred = np.where(counts @ onehot > 0, (sums @ onehot) / (counts @ onehot), np.nan)
    out = xr.merge(
        [
            loss_by_position(ds, quantiles=quantiles, block_bytes=block_bytes),
            loss_by_frame(ds, quantiles=quantiles, block_bytes=block_bytes),
            copy_accuracy(ds, block_bytes=block_bytes),
            xr.Dataset(
                {
                    "position_predictor_loss": (("predictor", "position"), by_position, NATS),
                    "frame_predictor_loss": (("predictor", "frame"), frame_pred, NATS),
                },
                coords={"predictor": list(PREDICTORS), **position_coords(ds), "frame": np.arange(frames)},
            ),
        ],
        compat="override",
        join="exact",
        combine_attrs="drop",
    )
    frame_loss = out["frame_loss"].values
    first = float(frame_loss[0])
    later = float(np.nanmean(frame_loss[1:])) if frames > 1 else float("nan")
    attrs = {
        "first_frame_loss": first,
        "later_frames_loss": later,
        "first_to_later_ratio": first / later if later > 0 else float("nan"),
        "in_context_score": float(frame_loss[-1] - frame_loss[0]),
        "clips": int(ds.sizes["clip"]),
        "frames": frames,
        "kind": "all" if kind is None else str(kind),
    }
    for i, name in enumerate(PREDICTORS):
        later_pred = frame_pred[i, 1:]
        attrs[f"later_frames_{name}"] = (
            float(np.nanmean(later_pred)) if np.isfinite(later_pred).any() else float("nan")
        )
    attrs.update(fit_attrs(fitted, alpha, seed))
    out.attrs = attrs
    return out


# The package exports it under this name: `toto_lens.analysis.redundancy` is this module, and an
# attribute of that name would be the module or the function depending on what was imported first.
loss_redundancy = redundancy
