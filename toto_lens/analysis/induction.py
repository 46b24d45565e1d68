"""Induction, previous-frame and previous-row heads: scores per (layer, head) from attention patterns.

Follows PROTOCOLS.md ("Induction heads"), Olsson et al. 2022 and the TransformerLens demo and
`head_detector` / `evals.induction_loss`; the Toto appendix A.3 suggests induction heads may explain why
frames after the first are cheap. The scoring functions are pure numpy on patterns (..., head, q, k);
the runners (`induction_scores`, `induction_across_checkpoints`) take a model, import torch inside, and
reduce each layer's pattern in a forward hook on `blocks.{i}.attn.hook_pattern`, so that a long context
never holds every layer's (B, H, T, T) pattern at once.

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
THRESHOLD = 0.4  # a head above this is called an induction (or previous-frame, …) head in the figures
PATTERN_BUDGET = 1 << 29  # bytes of one layer's float32 pattern per forward chunk (512 MiB)


def _pattern(pattern: object) -> np.ndarray:
    arr = np.asarray(pattern, dtype=np.float64)
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
    return arr[..., queries, keys].mean(axis=-1)


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
    arr = _pattern(pattern)
    mask = induction_mask(tokens)[..., None, :, :]  # broadcast over heads
    return (arr * mask).sum(axis=(-2, -1)) / arr.sum(axis=(-2, -1))


def repeated_clip_period(layout: Layout, context_length: int) -> tuple[int, int]:
    """(whole frames played twice, period in tokens) so that [start; clip; clip] fits the context.

    As many whole frames as fit twice (2·k·R·C + 1 ≤ context); if not even one frame fits twice, the
    first (context − 1) // 2 tokens of frame 0 (frames = 0).
    """
    frames = min(layout.frames, (context_length - 1) // (2 * layout.tokens_per_frame))
    if frames >= 1:
        return frames, frames * layout.tokens_per_frame
    return 0, (context_length - 1) // 2


def layout_of(ds: xr.Dataset | xr.DataArray) -> Layout:
    """The token layout of a cache (or its `tokens`): from the `layout` attribute or the grid coordinates."""
    spec = ds.attrs.get("layout")
    if isinstance(spec, dict) and {"frames", "rows", "cols"} <= set(spec):
        return Layout(int(spec["frames"]), int(spec["rows"]), int(spec["cols"]))
    if all(n in ds.coords for n in ("pos_frame", "row", "col")):
        f, r, c = (int(ds[n].max()) + 1 for n in ("pos_frame", "row", "col"))
        return Layout(f, r, c)
    raise AnalysisError("cannot tell the clips' layout: pass layout=Layout(frames, rows, cols)")


# ---------------------------------------------------------------- runners (torch inside)


def _unwrap(model: Any) -> tuple[Any, str | None, float]:
    """(Toto, checkpoint name or None, training step or NaN) from a Toto or a loaded Checkpoint."""
    if hasattr(model, "model") and hasattr(model, "training") and isinstance(model.training, dict):
        step = model.training.get("step", model.training.get("steps"))
        return model.model, model.name, float(step) if isinstance(step, int | float) else float("nan")
    if not hasattr(model, "blocks") or not hasattr(model, "config"):
        raise AnalysisError(f"expected a Toto model or a Checkpoint, got {type(model).__name__}")
    return model, None, float("nan")


def _chunk(net: Any, length: int) -> int:
    return max(1, PATTERN_BUDGET // (4 * net.config.n_heads * length * length))


def _run(net: Any, tokens: Any, targets: dict[str, tuple[np.ndarray, np.ndarray]], detector: bool = False):
    """Forward `tokens` (B, T) in chunks; per target set the (layer, B, H) scores, and per-token losses (B, T−1).

    Each layer's pattern is reduced in a hook on `hook_pattern` as soon as it exists.
    """
    import torch

    device = next(net.parameters()).device
    n_layers = len(net.blocks)
    found: dict[str, list[list]] = {name: [[] for _ in range(n_layers)] for name in targets}
    if detector:
        found["induction_detector"] = [[] for _ in range(n_layers)]
    state: dict[str, Any] = {}
    index = {
        name: (torch.as_tensor(q, device=device), torch.as_tensor(k, device=device))
        for name, (q, k) in targets.items()
    }

    def hook_for(layer: int):
        def hook(module, inputs, pattern):  # pattern (B, H, T, T)
            a = pattern.float()
            for name, (q, k) in index.items():
                found[name][layer].append(a[:, :, q, k].mean(-1).cpu())  # (B, H)
            if detector:
                m = state["mask"][:, None]  # (B, 1, T, T)
                found["induction_detector"][layer].append(((a * m).sum((-2, -1)) / a.sum((-2, -1))).cpu())

        return hook

    handles = [b.attn.hook_pattern.register_forward_hook(hook_for(i)) for i, b in enumerate(net.blocks)]
    impls = [b.attn.impl for b in net.blocks]
    losses = []
    try:
        net.set_attn_impl("eager")  # only the eager path materialises the pattern
        with torch.inference_mode():
            for start in range(0, tokens.shape[0], _chunk(net, tokens.shape[1])):
                part = tokens[start : start + _chunk(net, tokens.shape[1])].to(device)
                if detector:
                    state["mask"] = torch.as_tensor(induction_mask(part.cpu().numpy()), device=device)
                logp = torch.log_softmax(net(part).float(), dim=-1)  # (B, T, V)
                losses.append(-logp[:, :-1].gather(-1, part[:, 1:, None]).squeeze(-1).cpu())  # (B, T−1)
    finally:
        for h in handles:
            h.remove()
        for block, impl in zip(net.blocks, impls, strict=True):
            block.attn.impl = impl
    scores = {name: np.stack([torch.cat(v).numpy() for v in per_layer]) for name, per_layer in found.items()}
    return scores, torch.cat(losses).numpy()  # scores: name → (layer, B, H)


def induction_scores(
    model: Any,
    *,
    n: int = 64,
    batch: int = 8,
    seed: int = 0,
    clips_tokens: Any = None,
    layout: Layout | None = None,
    max_clips: int | None = None,
) -> xr.Dataset:
    """Scores per (layer, head) of one model, and the loss on repeated random sequences.

    * `prefix_matching`, `induction_detector`: on `batch` sequences [video start; r; r], r uniform over the
      visual ids (code_offset … vocab_size − 1), len(r) = n (needs 2n + 1 ≤ context).
    * `frame_induction`, `previous_frame`, `previous_row`: on real clips `clips_tokens` (clip, position) packed by `layout`
      (inferred from a DataArray's coordinates when None), cut to the context length if longer (attention
      is causal, so the kept queries' patterns do not change).
    * `repeated_clip`: each clip's visual tokens played twice after its own start token, the prefix-matching
      score with period = frames × tokens per frame; frames that do not fit twice are dropped
      (attributes `repeated_clip_frames`, `repeated_clip_period`).
    Without clips those four are NaN (attribute `clips` = 0). At most `max_clips` clips (default: batch).

    `first_copy_loss` / `second_copy_loss`: mean loss on the first and second copy (TransformerLens
    `evals.induction_loss`), over the same n − 1 in-copy indices 1 … n − 1: a second copy's first token
    cannot be predicted from context, so both copies leave it out.
    """
    import torch

    net, name, step = _unwrap(model)
    cfg = net.config
    if not 2 <= n <= (cfg.context_length - 1) // 2:
        raise AnalysisError(
            f"n = {n}: [start; r; r] needs 2n + 1 ≤ {cfg.context_length} tokens (the context) and n ≥ 2; "
            f"use n ≤ {(cfg.context_length - 1) // 2}"
        )
    if batch < 1:
        raise AnalysisError(f"batch must be at least 1, got {batch}")
    gen = torch.Generator().manual_seed(seed)
    r = torch.randint(cfg.code_offset, cfg.vocab_size, (batch, n), generator=gen)
    seq = torch.cat([torch.full((batch, 1), cfg.video_start_id), r, r], dim=1)  # (B, 2n + 1)
    found, losses = _run(net, seq, {"prefix_matching": prefix_matching_targets(n)}, detector=True)
    # losses[:, p − 1] is the loss of position p; first copy 2..n, second copy n+2..2n.
    first, second = losses[:, 1:n].mean(), losses[:, n + 1 : 2 * n].mean()

    n_layers, n_heads = len(net.blocks), cfg.n_heads
    out = {k: found[k].mean(axis=1, dtype=np.float64) for k in ("prefix_matching", "induction_detector")}
    attrs: dict[str, Any] = {"n": int(n), "batch": int(batch), "seed": int(seed), "clips": 0}
    attrs["context_length"] = int(cfg.context_length)
    if clips_tokens is not None:
        out_clips, clip_attrs = _clip_scores(net, clips_tokens, layout, max_clips or batch)
        out.update(out_clips)
        attrs.update(clip_attrs)
    nan = np.full((n_layers, n_heads), np.nan)
    layers = np.arange(1, n_layers + 1)
    data = {
        k: (("layer", "head"), out.get(k, nan), {"long_name": k.replace("_", " ") + " score"}) for k in SCORES
    }
    data["first_copy_loss"] = ((), float(first), {"units": "nats"})
    data["second_copy_loss"] = ((), float(second), {"units": "nats"})
    if name is not None:
        attrs["checkpoint"] = name
    if np.isfinite(step):
        attrs["step"] = step
    return xr.Dataset(
        data,
        coords={"layer": layers, "head": np.arange(n_heads), "depth": ("layer", layers / n_layers)},
        attrs=attrs,
    )


def _clip_scores(net: Any, clips_tokens: Any, layout: Layout | None, max_clips: int):
    import torch

    if layout is None:
        if not isinstance(clips_tokens, xr.DataArray | xr.Dataset):
            raise AnalysisError("clips_tokens as a plain array needs layout=Layout(frames, rows, cols)")
        layout = layout_of(clips_tokens)
    source = clips_tokens["tokens"] if isinstance(clips_tokens, xr.Dataset) else clips_tokens
    ids = np.asarray(source[:max_clips])  # slice first: a lazy cache then reads only these clips
    if ids.ndim != 2 or ids.shape[1] != layout.length or ids.shape[0] == 0:
        raise AnalysisError(
            f"clips_tokens must be (clip, position) with {layout.length} positions, got {ids.shape}"
        )
    ids = torch.as_tensor(ids.astype(np.int64))
    ctx = net.config.context_length
    length = min(layout.length, ctx)
    found, _ = _run(
        net,
        ids[:, :length],
        {
            "frame_induction": frame_induction_targets(layout, length),
            "previous_frame": previous_frame_targets(layout, length),
            "previous_row": previous_row_targets(layout, length),
        },
    )
    frames, period = repeated_clip_period(layout, ctx)
    visual = ids[:, 1 : 1 + period]
    repeated = torch.cat([ids[:, :1], visual, visual], dim=1)  # (clip, 2·period + 1)
    found.update(_run(net, repeated, {"repeated_clip": prefix_matching_targets(period)})[0])
    scores = {k: v.mean(axis=1, dtype=np.float64) for k, v in found.items()}
    attrs = {"clips": int(ids.shape[0]), "frames": layout.frames, "rows": layout.rows, "cols": layout.cols}
    attrs.update({"repeated_clip_frames": frames, "repeated_clip_period": period})
    return scores, attrs


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
    keep = ("n", "batch", "seed")
    out.attrs = {k: results[0].attrs[k] for k in keep if k in results[0].attrs}
    out.attrs["checkpoints"] = names
    return out


def induction_across_checkpoints(models_or_names: Sequence[Any], **kwargs: Any) -> xr.Dataset:
    """`induction_scores` of each checkpoint (a name or path, a Checkpoint, or a Toto) stacked along `checkpoint`.

    Keyword arguments go to `induction_scores` (the same clips for every model). Sort the input by
    training step to plot emergence; `step` comes from each checkpoint's training metadata.
    """
    from toto_lens.checkpoints import load_checkpoint

    results = []
    for item in models_or_names:
        loaded = load_checkpoint(item) if isinstance(item, str) else item
        results.append(induction_scores(loaded, **kwargs))
    return stack_checkpoints(results)
