"""Frame-wise loss redundancy: the model's loss per position and per frame, read against trivial predictors.

Follows the Toto appendix A.3 (Fig. 10) and PROTOCOLS.md ("Frame-wise loss redundancy"): the mean
per-token loss at each position of the context and per frame; the paper finds the first frame's loss
high and the later frames' lower. Beside it, the loss of predictors that see the tokens only, so that a
low loss is read against what copying alone gives:

* `copy`: p(x_t | x_{t-frame}), the token at the same (row, col) one frame earlier as the only context.
  A hard copy (p(same) = 1 - ε) has no honest ε, so this is the empirical conditional of a token given
  that earlier token, a "bigram across frames". Frame 0 has no earlier frame: NaN there, no fallback, so
  a frame-0 mean never mixes two predictors. `frame_copy_accuracy` is the plain copy: the fraction of
  tokens equal to the token one frame earlier (no fitting, all clips).
* `unigram`: token frequencies with add-α smoothing (α = 0.5 by default, Krichevsky-Trofimov).
* `bigram`: p(x_t | x_{t-1}) in raster order (the start token is the context of position 1).

Both conditionals are Witten-Bell interpolated with the unigram: p = (c(h,x) + T(h)·u(x)) / (c(h) + T(h)),
T(h) the number of distinct tokens seen after context h. Add-α on a conditional over thousands of codes
hands most of the mass of a rarely seen context to codes never seen there; Witten-Bell has no parameter
to tune, gives an unseen context the unigram, and on a context always followed by one token gives that
token c/(c+1). Losses are −log p in nats, like the cache's `loss`.

Fit set: the baselines are fitted on a random half of the clips (by clip, seeded) and evaluated, with
the model beside them, on the other half (`fit="half"`); `fit="all"` fits and evaluates in-sample, which
also happens when only one clip is there (attribute `baseline_fit` says which). The model's own curves
(`position_loss`, `frame_loss` and their spread) use every selected clip.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

from toto_lens.analysis import AnalysisError
from toto_lens.analysis.blocks import BLOCK_BYTES, KeyCounts, read_clips, steps, values
from toto_lens.config import NUM_SPECIAL
from toto_lens.data.labels import KINDS
from toto_lens.io import dict_attr

PREDICTORS = ("model", "copy", "unigram", "bigram")
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
EXTRACT = "extract it with `toto-lens extract --ckpt NAME`"


def _require(ds: object, *names: str) -> xr.Dataset:
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


def complete_clips(ds: xr.Dataset) -> xr.Dataset:
    """The clips marked written in `complete` (all of them when the variable is absent)."""
    if "complete" not in ds.variables or ds["complete"].dims != ("clip",):
        return ds
    # An interrupted extraction leaves unwritten clips reading fill values (token 0, NaN loss).
    done = np.flatnonzero(np.asarray(ds["complete"].values) == 1)
    if done.size == 0:
        raise AnalysisError(f"no clip of the cache is complete yet; {EXTRACT} (it resumes where it stopped)")
    return ds if done.size == ds.sizes["clip"] else ds.isel(clip=done)


def _prepared(ds: object, kind: str | int | None, *names: str) -> xr.Dataset:
    ds = select_kind(complete_clips(_require(ds, *names)), kind)
    if ds.sizes.get("clip", 0) == 0:
        raise AnalysisError("the cache holds no clips")
    return ds


def _position_coords(ds: xr.Dataset) -> dict:
    f, r, c = grid_of(ds)
    positions = ds["position"].values if "position" in ds.coords else np.arange(f.size)
    return {
        "position": positions,
        "pos_frame": ("position", f),
        "row": ("position", r),
        "col": ("position", c),
    }


NATS = {"units": "nats"}
# Bytes a computation holds per value of the cache it reads (float64 and int64 copies, masks, the four
# predictors' per-token losses): the pieces it is handed are `block_bytes` at this rate.
_SPREAD_BYTES, _FIT_BYTES, _EVAL_BYTES = 24, 64, 96


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
    ds = _prepared(ds, kind, "loss")
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
        coords={**_position_coords(ds), "quantile": np.asarray(quantiles, dtype=np.float64)},
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
    ds = _prepared(ds, kind, "loss")
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
    ds = _prepared(ds, kind, "tokens")
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
        coords={**_position_coords(ds), "frame": np.arange(frames)},
    )


def _split(clips: int, fit: str, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(fit clip indices, evaluation clip indices, description)."""
    everything = np.arange(clips)
    if fit == "all":
        return everything, everything, "in-sample"
    if fit != "half":
        raise AnalysisError(f"fit must be 'half' (held-out clips) or 'all' (in-sample), got {fit!r}")
    if clips < 2:
        return everything, everything, "in-sample (one clip: nothing to hold out)"
    order = np.random.default_rng(seed).permutation(clips)
    return np.sort(order[: clips // 2]), np.sort(order[clips // 2 :]), "half of the clips, held out"


def _wb_table(keys: np.ndarray, counts: np.ndarray, codes: int, n_ctx: int) -> tuple[np.ndarray, ...]:
    """A fitted Witten-Bell table from the fit pairs' sorted keys h·codes + x and their counts: (keys,
    counts, c(h) the pairs of each context h, T(h) the distinct tokens seen after it)."""
    context = keys // codes
    c_h = np.bincount(context, weights=counts, minlength=n_ctx)  # integer sums, exact in float64
    t_h = np.bincount(context, minlength=n_ctx).astype(np.float64)
    return keys, counts, c_h, t_h


def _wb_loss(table: tuple[np.ndarray, ...], h_eval: np.ndarray, x_eval: np.ndarray, unigram: np.ndarray):
    """−log p(x | h) on the evaluation pairs (context ids h, codes x) from a table of `_wb_table`."""
    keys, counts, c_h, t_h = table
    lookup = h_eval * unigram.size + x_eval
    at = np.minimum(np.searchsorted(keys, lookup), keys.size - 1)
    c_hx = np.where(keys[at] == lookup, counts[at], 0).astype(np.float64)
    ch, th, u = c_h[h_eval], t_h[h_eval], unigram[x_eval]
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(ch > 0, (c_hx + th * u) / np.maximum(ch + th, 1), u)  # unseen context: the unigram
    return -np.log(p)


def _witten_bell(
    context: tuple[np.ndarray, np.ndarray],
    target: tuple[np.ndarray, np.ndarray],
    unigram: np.ndarray,
    n_ctx: int,
) -> np.ndarray:
    """−log p(target | context) on the evaluation pairs, fitted on the fit pairs (both given as (fit, eval))."""
    (h_fit, h_eval), (x_fit, x_eval) = context, target
    keys, counts = np.unique(h_fit * unigram.size + x_fit, return_counts=True)  # sparse (context, token)
    return _wb_loss(_wb_table(keys, counts, unigram.size, n_ctx), h_eval, x_eval, unigram)


@dataclass
class _Baselines:
    """The trivial predictors fitted on the fit clips: what `_block_losses` needs to score any clip."""

    visual: np.ndarray  # visual positions
    pairs: dict[int, tuple[np.ndarray, np.ndarray]]  # predictor row → (positions, their context positions)
    vocab: int
    offset: int
    source: str
    unigram: np.ndarray  # (codes,)
    tables: dict[int, tuple[np.ndarray, ...]]  # predictor row → Witten-Bell table (`_wb_table`)
    fit_idx: np.ndarray
    eval_idx: np.ndarray
    how: str
    block_bytes: int  # of the cache read at once by the evaluation pass


def _fit_baselines(
    ds: xr.Dataset, fit: str, alpha: float, seed: int, vocab_size: int | None, block_bytes: int
) -> _Baselines:
    """Unigram and the two Witten-Bell conditionals, counted a block of clips at a time: the counts of
    the blocks add up to those of all fit clips at once, so the fit is the same whatever the blocks."""
    if not alpha > 0:
        raise AnalysisError(f"alpha (add-α smoothing of the unigram) must be positive, got {alpha}")
    f, r, c = grid_of(ds)
    visual = np.flatnonzero(f >= 0)
    prev_frame = previous_frame_position(f, r, c)
    later = visual[prev_frame[visual] >= 0]  # visual positions of frames ≥ 1
    pairs = {
        row: (at, before) for row, at, before in ((1, later, prev_frame[later]), (3, visual, visual - 1))
    }
    pairs = {row: v for row, v in pairs.items() if v[0].size}  # one-frame clips: nothing to copy from
    fit_idx, eval_idx, how = _split(ds.sizes["clip"], fit, seed)
    in_fit = np.zeros(ds.sizes["clip"], dtype=bool)
    in_fit[fit_idx] = True
    low, high, code_low = np.inf, -np.inf, np.inf
    ids = np.zeros(0, dtype=np.int64)  # fit-clip counts of each visual token id
    # (context id, token id) as one key with the token id in the low 32 bits: the same order as the
    # table's h·codes + code, which needs the vocabulary size, known only after this pass.
    pair_counts = {row: KeyCounts() for row in pairs}
    for clips, v in read_clips(ds, ("tokens",), block_bytes, _FIT_BYTES):
        t = v["tokens"].astype(np.int64)
        low, high = min(low, int(t.min())), max(high, int(t.max()))
        code_low = min(code_low, int(t[:, visual].min()))
        fitted = t[in_fit[clips]]
        if low < 0 or not len(fitted):  # negative ids are refused below, once all are seen
            continue
        seen = np.bincount(fitted[:, visual].ravel())
        ids = np.pad(ids, (0, max(0, seen.size - ids.size)))
        ids[: seen.size] += seen
        for row, (at, before) in pairs.items():
            pair_counts[row].add(*np.unique((fitted[:, before] << 32) | fitted[:, at], return_counts=True))
    vocab, offset, source = vocabulary(ds, high, vocab_size)
    if low < 0 or high >= vocab or code_low - offset < 0:
        raise AnalysisError(
            f"tokens must be ids in [0, {vocab}) with visual codes (≥ {offset}) at visual positions, "
            f"got ids in [{low}, {high}]; pass vocab_size= if the cache lacks model_config"
        )
    counts = np.zeros(vocab - offset, dtype=np.int64)
    counts[: max(0, ids.size - offset)] = ids[offset:]
    unigram = (counts + alpha) / (counts.sum() + alpha * counts.size)
    tables = {}
    for row, counter in pair_counts.items():
        keys, n = counter.result()
        keys = (keys >> 32) * unigram.size + (keys & 0xFFFFFFFF) - offset  # h·codes + code, order kept
        tables[row] = _wb_table(keys, n, unigram.size, vocab)
    return _Baselines(
        visual, pairs, vocab, offset, source, unigram, tables, fit_idx, eval_idx, how, block_bytes
    )


def _block_losses(fitted: _Baselines, tokens: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """Per-token losses (predictor, clip, position) of a block of clips' tokens and model losses."""
    visual = fitted.visual
    out = np.full((len(PREDICTORS), tokens.shape[0], tokens.shape[1]), np.nan)
    out[0][:, visual] = loss[:, visual]
    out[2][:, visual] = -np.log(fitted.unigram[tokens[:, visual] - fitted.offset])
    for row, (at, before) in fitted.pairs.items():
        context, target = tokens[:, before].ravel(), tokens[:, at].ravel() - fitted.offset
        losses = _wb_loss(fitted.tables[row], context, target, fitted.unigram)
        out[row][:, at] = losses.reshape(tokens.shape[0], at.size)
    return out


def _evaluation_blocks(ds: xr.Dataset, fitted: _Baselines):
    """Per-token losses (predictor, clip, position) of the evaluation clips, a piece of clips at a time."""
    in_eval = np.zeros(ds.sizes["clip"], dtype=bool)
    in_eval[fitted.eval_idx] = True
    for clips, v in read_clips(ds, ("tokens", "loss"), fitted.block_bytes, _EVAL_BYTES):
        keep = in_eval[clips]
        if keep.any():
            t, loss = v["tokens"][keep].astype(np.int64), v["loss"][keep].astype(np.float64)
            yield _block_losses(fitted, t, loss)


def predictor_losses(
    ds: xr.Dataset,
    *,
    kind: str | int | None = None,
    fit: str = "half",
    alpha: float = 0.5,
    seed: int = 0,
    vocab_size: int | None = None,
    block_bytes: int = BLOCK_BYTES,
) -> xr.DataArray:
    """Per-token loss (predictor, clip, position) of the model and the trivial predictors, evaluation clips only.

    Predictors are `PREDICTORS`; values are NaN off the visual tokens (the model's end-token loss
    included, so that every row covers the same tokens) and, for `copy`, on frame 0. See the module
    docstring for the predictors, the smoothing and the fit split; `vocab_size` (special ids included)
    overrides the cache's model config. The baselines are counted and scored a block of clips at a time
    (`block_bytes`); the result itself holds every evaluation clip (`redundancy` keeps only its means).
    """
    ds = _prepared(ds, kind, "tokens", "loss")
    fitted = _fit_baselines(ds, fit, alpha, seed, vocab_size, block_bytes)
    out = np.concatenate(list(_evaluation_blocks(ds, fitted)), axis=1)
    return _predictor_array(ds, fitted, out, alpha, seed)


def _predictor_array(ds: xr.Dataset, fitted: _Baselines, out, alpha: float, seed: int) -> xr.DataArray:
    eval_idx = fitted.eval_idx
    clip_ids = ds["clip"].values[eval_idx] if "clip" in ds.coords else eval_idx
    return xr.DataArray(
        out,
        dims=("predictor", "clip", "position"),
        coords={"predictor": list(PREDICTORS), "clip": clip_ids, **_position_coords(ds)},
        name="loss",
        attrs={**NATS, **_fit_attrs(fitted, alpha, seed)},
    )


def _fit_attrs(fitted: _Baselines, alpha: float, seed: int) -> dict:
    return {
        "baseline_fit": fitted.how, "fit_clips": int(fitted.fit_idx.size), "eval_clips": int(fitted.eval_idx.size),
        "alpha": float(alpha), "vocab_size": fitted.vocab, "vocab_source": fitted.source, "seed": int(seed),
    }  # fmt: skip


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
    ds = _prepared(ds, kind, "tokens", "loss")
    fitted = _fit_baselines(ds, fit, alpha, seed, vocab_size, block_bytes)
    f, _, _ = grid_of(ds)
    frames = int(f.max()) + 1
    # Token means over the evaluation clips: pool the clips, then the positions of each frame.
    sums = np.zeros((len(PREDICTORS), f.size))  # (predictor, position)
    counts = np.zeros((len(PREDICTORS), f.size))
    for block in _evaluation_blocks(ds, fitted):  # (predictor, clip, position)
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
                coords={"predictor": list(PREDICTORS), **_position_coords(ds), "frame": np.arange(frames)},
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
    attrs.update(_fit_attrs(fitted, alpha, seed))
    out.attrs = attrs
    return out


# The package exports it under this name: `toto_lens.analysis.redundancy` is this module, and an
# attribute of that name would be the module or the function depending on what was imported first.
loss_redundancy = redundancy
