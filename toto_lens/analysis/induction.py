"""Induction, previous-frame and previous-row heads: scores per (layer, head) from attention patterns.

Follows PROTOCOLS.md ("Induction heads"), Olsson et al. 2022 and the TransformerLens demo and
`head_detector` / `evals.induction_loss`; the Toto appendix A.3 suggests induction heads may explain why
frames after the first are cheap. The scoring functions are pure functions of patterns (..., head, q, k):
numpy arrays, or torch tensors as they are (no copy), which is how the runners of `toto_lens.run.induction`
call them on each layer's pattern inside its hook, so that a long context never holds every layer's
(B, H, T, T) pattern at once.

Layer numbering is the cache's: the attention of block i (0-based) is layer i + 1; layer 0 (the
embeddings) has none. Scores lie in [0, 1]: the attention mass on the target key, averaged over queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from toto_lens.analysis import AnalysisError, concat_outer
from toto_lens.data.layout import Layout

SCORES = (
    "prefix_matching",
    "repeated_clip",
    "frame_induction",
    "previous_frame",
    "previous_row",
    "induction_detector",
)
# The prefix-matching score beside the same score on [start; r; r′] (no repetition, same targets), and
# their difference: a head that looks a fixed distance back scores on both, an induction head only on r; r.
CONTROLLED = ("prefix_matching_control", "prefix_matching_excess")
THRESHOLD = 0.4  # a head above this is called an induction (or previous-frame, …) head in the figures


def _pattern(pattern: object) -> Any:
    """The pattern as an array: a tensor (anything with shape and ndim but no numpy dtype) is used as
    it is, on its device; anything else becomes a float64 numpy array."""
    is_tensor = hasattr(pattern, "ndim") and not isinstance(pattern, np.ndarray) and hasattr(pattern, "float")
    arr = pattern if is_tensor else np.asarray(pattern, dtype=np.float64)
    if arr.ndim < 2 or arr.shape[-1] != arr.shape[-2]:
        raise AnalysisError(
            f"an attention pattern must be (..., query, key) with query == key, got {arr.shape}"
        )
    return arr


def prefix_matching_targets(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(queries, keys) of the prefix-matching score on [start; r; r] with len(r) = n.

    The first copy sits at positions 1..n, the second at n+1..2n. The token at query i of the second copy
    last occurred at i − n, so "the token after the previous occurrence" is i − n + 1 = i − (n − 1):
    the diagonal at offset −(n − 1), as in PROTOCOLS.md and the TransformerLens demo
    (`pattern.diagonal(offset=1 - seq_len)`). The demo averages that whole diagonal, which also holds two
    first-copy queries (n − 1 and n) with nothing to match; here only the n second-copy queries count.
    """
    if int(n) < 2:
        raise AnalysisError(
            f"the repeated sequence needs n ≥ 2 tokens (n = 1 matches the query itself), got {n}"
        )
    queries = np.arange(n + 1, 2 * n + 1)
    return queries, queries - (n - 1)


def frame_offset(n: int, tokens_per_frame: int) -> int:
    """How far n lies from the nearest whole number of frames, in tokens: min(n mod p, p − n mod p)."""
    rest = int(n) % int(tokens_per_frame)
    return min(rest, int(tokens_per_frame) - rest)


def confounded_length(n: int, tokens_per_frame: int) -> bool:
    """True when the prefix-matching target of [start; r; r] (offset −(n − 1)) sits within a token of a
    whole number of frames back: a head that reads a fixed offset of about k frames (previous frame,
    frame induction) then scores as an induction head without any induction."""
    return frame_offset(n, tokens_per_frame) <= 1


def default_repeat_length(tokens_per_frame: int, max_n: int) -> int:
    """The default n of [start; r; r], kept away from whole frames.

    The rule: n = p + ⌊p/2⌋ (one and a half frames, p tokens a frame, so n mod p = ⌊p/2⌋, as far from a
    whole frame as it gets) when 2n + 1 fits the context (n ≤ max_n); else the longest n ≤ max_n whose
    distance to a multiple of p is largest. With 8 × 8 tokens a frame (toto-tiny, the demo) n = 96.
    """
    p, max_n = int(tokens_per_frame), int(max_n)
    if p < 1 or max_n < 2:
        raise AnalysisError(f"need tokens_per_frame ≥ 1 and room for n ≥ 2, got {p} and {max_n}")
    if p + p // 2 <= max_n:
        return p + p // 2
    return max(range(2, max_n + 1), key=lambda n: (frame_offset(n, p), n))


def previous_frame_targets(layout: Layout, length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(queries, keys): every visual token (f ≥ 1, r, c) to (f − 1, r, c), offset −R·C; queries < length."""
    q = np.flatnonzero(layout.frame_of_position >= 1)
    q = q[q < (layout.length if length is None else length)]
    return q, q - layout.tokens_per_frame


def frame_induction_targets(layout: Layout, length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(queries, keys): the query that predicts (f ≥ 1, r, c), position t − 1, to (f − 1, r, c), t − R·C.

    The video form of prefix matching: attend to where the token about to be predicted sat one frame
    earlier, which is what copying from the previous frame needs (offset −(R·C − 1) from the query). The
    plain previous-frame score (offset −R·C) looks at the query's own place instead.
    """
    t = np.flatnonzero(layout.frame_of_position >= 1)
    t = t[t < (layout.length if length is None else length)]
    return t - 1, t - layout.tokens_per_frame


def previous_row_targets(layout: Layout, length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(queries, keys): every visual token (f, r ≥ 1, c) to (f, r − 1, c), offset −C; queries < length."""
    q = np.flatnonzero(layout.row_of_position >= 1)
    q = q[q < (layout.length if length is None else length)]
    return q, q - layout.cols


def target_score(pattern: object, queries: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Mean over the given queries of A[..., query, key]: (..., H, T, T) → (..., H)."""
    arr = _pattern(pattern)
    if queries.size == 0:
        raise AnalysisError("no query has a target inside this pattern (is the sequence long enough?)")
    if queries.max() >= arr.shape[-1] or keys.min() < 0:
        raise AnalysisError(f"targets reach position {queries.max()}, but the pattern covers {arr.shape[-1]}")
    return arr[..., queries, keys].mean(-1)


def prefix_matching_score(pattern: object, n: int) -> np.ndarray:
    """Induction score of a pattern (..., H, T, T) of [start; r; r], len(r) = n, T = 1 + 2n: (..., H)."""
    arr = _pattern(pattern)
    if arr.shape[-1] != 2 * n + 1:
        raise AnalysisError(
            f"a pattern of [start; r; r] with n = {n} has T = {2 * n + 1}, got T = {arr.shape[-1]}"
        )
    return target_score(arr, *prefix_matching_targets(n))


def previous_frame_score(pattern: object, layout: Layout) -> np.ndarray:
    """Mean attention from (f, r, c) to (f − 1, r, c) over the queries the pattern holds: (..., H)."""
    arr = _pattern(pattern)
    return target_score(arr, *previous_frame_targets(layout, arr.shape[-1]))


def previous_row_score(pattern: object, layout: Layout) -> np.ndarray:
    """Mean attention from (f, r, c) to (f, r − 1, c) over the queries the pattern holds: (..., H)."""
    arr = _pattern(pattern)
    return target_score(arr, *previous_row_targets(layout, arr.shape[-1]))


def induction_mask(tokens: object) -> np.ndarray:
    """TransformerLens' induction detection pattern: M[..., i, j] = tokens[j − 1] == tokens[i], j − 1 < i."""
    t = np.asarray(tokens)
    same = t[..., :, None] == t[..., None, :]  # (..., T, T): token i == token k
    earlier = np.tril(np.ones(same.shape[-2:], dtype=bool), k=-1)  # k < i: an earlier occurrence
    mask = np.zeros(same.shape, dtype=bool)
    mask[..., :, 1:] = (same & earlier)[..., :, :-1]  # shift right: the key after that occurrence
    return mask


def induction_detector_score(pattern: object, tokens: object) -> np.ndarray:
    """Detector form (TransformerLens `detect_head`, error "mul"): Σ A·M / Σ A per head, (..., H, T, T) → (..., H).

    The denominator sums every query, so on [start; r; r] the first copy (which has nothing to match)
    dilutes it to at most about n / (2n + 1); `prefix_matching_score` is the clean random-token test. On
    video the mask turns dense wherever a background repeats (PROTOCOLS.md).
    """
    return masked_mass(pattern, induction_mask(tokens)[..., None, :, :])  # the mask broadcast over heads


def masked_mass(pattern: object, mask: object) -> Any:
    """Σ A·M / Σ A over (query, key): the share of a pattern's attention that falls on a mask, per head."""
    arr = _pattern(pattern)
    return (arr * mask).sum((-2, -1)) / arr.sum((-2, -1))


def repeated_clip_period(layout: Layout, context_length: int) -> tuple[int, int]:
    """(whole frames played twice, period in tokens) so that [start; clip; clip] fits the context.

    As many whole frames as fit twice (2·k·R·C + 1 ≤ context); if not even one frame fits twice, the
    first (context − 1) // 2 tokens of frame 0 (frames = 0).
    """
    frames = min(layout.frames, (context_length - 1) // (2 * layout.tokens_per_frame))
    if frames >= 1:
        return frames, frames * layout.tokens_per_frame
    return 0, (context_length - 1) // 2


def stack_checkpoints(results: Sequence[xr.Dataset]) -> xr.Dataset:
    """Concatenate `induction_scores` results along `checkpoint` (coords `step`, `n_layers`, `depth`).

    Models of different depth are outer-joined on `layer` (NaN where a model has no such layer); `depth`
    becomes (checkpoint, layer).
    """
    if isinstance(results, xr.Dataset) or len(results) == 0:
        raise AnalysisError("stack_checkpoints needs a non-empty list of induction_scores results")
    if not all(isinstance(r, xr.Dataset) and "prefix_matching" in r for r in results):
        raise AnalysisError(
            "stack_checkpoints takes induction_scores results (Datasets with prefix_matching)"
        )

    def label(r: xr.Dataset, i: int) -> str:  # a result picked out of a stack keeps a scalar coordinate
        if "checkpoint" in r.attrs:
            return str(r.attrs["checkpoint"])
        return str(r["checkpoint"].item()) if "checkpoint" in r.coords else f"model {i}"

    def step(r: xr.Dataset) -> float:
        value = r.attrs.get("step", r["step"].item() if "step" in r.coords else np.nan)
        return float(value)

    names = [label(r, i) for i, r in enumerate(results)]
    if len(set(names)) != len(names):
        raise AnalysisError(f"checkpoint names must differ to be stacked, got {names}")
    stacked = [
        r.drop_vars(["depth", "checkpoint", "step", "n_layers"], errors="ignore")
        .dropna("layer", how="all", subset=["prefix_matching"])
        .expand_dims(checkpoint=[name])
        .assign_coords(step=("checkpoint", [step(r)]))
        for name, r in zip(names, results, strict=True)
    ]
    stacked = [r.assign_coords(n_layers=("checkpoint", [int(r.sizes["layer"])])) for r in stacked]
    out = concat_outer(stacked, "checkpoint")
    out = out.assign_coords(depth=(out["layer"] / out["n_layers"]).transpose("checkpoint", "layer"))
    keep = ("n", "batch", "seed", "tokens_per_frame", "n_confounded")
    out.attrs = {k: results[0].attrs[k] for k in keep if k in results[0].attrs}
    out.attrs["checkpoints"] = names
    return out
