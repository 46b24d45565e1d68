"""Trivial token-only predictors of a cache's tokens, scored beside the model: what copying alone gives.

The loss redundancy analysis (`redundancy`, PROTOCOLS.md "Frame-wise loss redundancy") reads the model's
per-token loss against these:

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

from dataclasses import dataclass

import numpy as np
import xarray as xr

from toto_lens.analysis import AnalysisError
from toto_lens.analysis.blocks import BLOCK_BYTES, KeyCounts, read_clips
from toto_lens.analysis.token_cache import (
    NATS,
    grid_of,
    position_coords,
    prepared,
    previous_frame_position,
    vocabulary,
)

PREDICTORS = ("model", "copy", "unigram", "bigram")
# Bytes a computation holds per value of the cache it reads (int64 copies, masks, the four predictors'
# per-token losses): the pieces it is handed are `block_bytes` at this rate.
_FIT_BYTES, _EVAL_BYTES = 64, 96


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
class Baselines:
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


def fit_baselines(
    ds: xr.Dataset, fit: str, alpha: float, seed: int, vocab_size: int | None, block_bytes: int
) -> Baselines:
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
    return Baselines(
        visual, pairs, vocab, offset, source, unigram, tables, fit_idx, eval_idx, how, block_bytes
    )


def _block_losses(fitted: Baselines, tokens: np.ndarray, loss: np.ndarray) -> np.ndarray:
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


def evaluation_blocks(ds: xr.Dataset, fitted: Baselines):
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
    ds = prepared(ds, kind, "tokens", "loss")
    fitted = fit_baselines(ds, fit, alpha, seed, vocab_size, block_bytes)
    out = np.concatenate(list(evaluation_blocks(ds, fitted)), axis=1)
    return _predictor_array(ds, fitted, out, alpha, seed)


def _predictor_array(ds: xr.Dataset, fitted: Baselines, out, alpha: float, seed: int) -> xr.DataArray:
    eval_idx = fitted.eval_idx
    clip_ids = ds["clip"].values[eval_idx] if "clip" in ds.coords else eval_idx
    return xr.DataArray(
        out,
        dims=("predictor", "clip", "position"),
        coords={"predictor": list(PREDICTORS), "clip": clip_ids, **position_coords(ds)},
        name="loss",
        attrs={**NATS, **fit_attrs(fitted, alpha, seed)},
    )


def fit_attrs(fitted: Baselines, alpha: float, seed: int) -> dict:
    return {
        "baseline_fit": fitted.how, "fit_clips": int(fitted.fit_idx.size), "eval_clips": int(fitted.eval_idx.size),
        "alpha": float(alpha), "vocab_size": fitted.vocab, "vocab_source": fitted.source, "seed": int(seed),
    }  # fmt: skip
