"""Head-score runners: induction, previous-frame and previous-row heads of a model, per (layer, head).

The protocols (PROTOCOLS.md, "Induction heads"): random-token sequences [start; r; r] for prefix
matching and the TransformerLens detector, real clips for the video forms, and a clip played twice.
This module builds the sequences and runs the model; every pattern goes through `capture`'s
`blocks.{i}.attn.hook_pattern` (which switches those blocks to the eager path for the call) and is turned
into numbers by the pure functions of `toto_lens.analysis.induction`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from toto_lens.analysis import AnalysisError
from toto_lens.analysis.induction import (
    SCORES,
    confounded_length,
    default_repeat_length,
    frame_induction_targets,
    induction_mask,
    masked_mass,
    prefix_matching_targets,
    previous_frame_targets,
    previous_row_targets,
    repeated_clip_period,
    stack_checkpoints,
    target_score,
)
from toto_lens.data.layout import Layout, layout_of
from toto_lens.run.hooks import capture

PATTERN_BUDGET = 1 << 29  # bytes of one layer's float32 pattern per forward chunk (512 MiB)


def _tokens_per_frame(model: Any, layout: Layout | None) -> int | None:
    """Tokens a frame: the layout's, else the grid the checkpoint's tokenizer records, else None."""
    if layout is not None:
        return layout.tokens_per_frame
    spec = getattr(model, "tokenizer", None)
    grid = spec.get("grid") if isinstance(spec, dict) else None
    return int(grid[0]) * int(grid[1]) if grid else None


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

    Each layer's pattern is scored inside its `capture` hook, as soon as it exists, by the pure score
    functions of `toto_lens.analysis.induction`, and then dropped.
    """
    import torch

    device = next(net.parameters()).device
    n_layers = len(net.blocks)
    names = {f"blocks.{i}.attn.hook_pattern": i for i in range(n_layers)}
    found: dict[str, list[list]] = {name: [[] for _ in range(n_layers)] for name in targets}
    if detector:
        found["induction_detector"] = [[] for _ in range(n_layers)]
    state: dict[str, Any] = {}

    def score(name: str, pattern: Any) -> None:  # pattern (B, H, T, T)
        a, layer = pattern.float(), names[name]
        for key, (q, k) in targets.items():
            found[key][layer].append(target_score(a, q, k).cpu())  # (B, H)
        if detector:
            found["induction_detector"][layer].append(masked_mass(a, state["mask"]).cpu())

    losses = []
    step = _chunk(net, tokens.shape[1])
    with torch.inference_mode(), capture(net, list(names), score):
        for start in range(0, tokens.shape[0], step):
            part = tokens[start : start + step].to(device)
            if detector:
                mask = induction_mask(part.cpu().numpy())[:, None]  # (B, 1, T, T)
                state["mask"] = torch.as_tensor(mask, device=device)
            logp = torch.log_softmax(net(part).float(), dim=-1)  # (B, T, V)
            losses.append(-logp[:, :-1].gather(-1, part[:, 1:, None]).squeeze(-1).cpu())  # (B, T−1)
    scores = {name: np.stack([torch.cat(v).numpy() for v in per_layer]) for name, per_layer in found.items()}
    return scores, torch.cat(losses).numpy()  # scores: name → (layer, B, H)


def induction_scores(
    model: Any,
    *,
    n: int | None = None,
    batch: int = 8,
    seed: int = 0,
    clips_tokens: Any = None,
    layout: Layout | None = None,
    max_clips: int | None = None,
) -> xr.Dataset:
    """Scores per (layer, head) of one model, and the loss on repeated random sequences.

    * `prefix_matching`, `induction_detector`: on `batch` sequences [video start; r; r], r uniform over the
      visual ids (code_offset … code_offset + num_codes − 1), len(r) = n (needs 2n + 1 ≤ context).
    * `prefix_matching_control`: the prefix-matching score at the same (query, key) targets on
      [video start; r; r′], r′ fresh random tokens (no repetition); `prefix_matching_excess` = raw −
      control, the controlled score. A head that reads a fixed offset back scores on both.
    * n = None picks n away from whole frames (`default_repeat_length`: 1.5 frames, n = 96 for 8 × 8
      tokens a frame), tokens a frame taken from `layout` (or the clips) or the checkpoint's tokenizer.
      At n within a token of a multiple of the tokens a frame, the target offset −(n − 1) is about a
      whole number of frames back, so previous-frame and frame-induction heads score as induction heads
      (attribute `n_confounded`).
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
    if layout is None and isinstance(clips_tokens, xr.DataArray | xr.Dataset):
        layout = layout_of(clips_tokens)
    per_frame = _tokens_per_frame(model, layout)
    if n is None:
        if per_frame is None:
            raise AnalysisError(
                "n = None picks n from the tokens a frame: pass layout, clips with coordinates, or n"
            )
        n = default_repeat_length(per_frame, (cfg.context_length - 1) // 2)
    if not 2 <= n <= (cfg.context_length - 1) // 2:
        raise AnalysisError(
            f"n = {n}: [start; r; r] needs 2n + 1 ≤ {cfg.context_length} tokens (the context) and n ≥ 2; "
            f"use n ≤ {(cfg.context_length - 1) // 2}"
        )
    if batch < 1:
        raise AnalysisError(f"batch must be at least 1, got {batch}")
    gen = torch.Generator().manual_seed(seed)
    r = torch.randint(cfg.code_offset, cfg.code_offset + cfg.num_codes, (batch, n), generator=gen)
    fresh = torch.randint(cfg.code_offset, cfg.code_offset + cfg.num_codes, (batch, n), generator=gen)
    start = torch.full((batch, 1), cfg.video_start_id)
    seq = torch.cat([start, r, r], dim=1)  # (B, 2n + 1)
    targets = prefix_matching_targets(n)
    found, losses = _run(net, seq, {"prefix_matching": targets}, detector=True)
    control = torch.cat([start, r, fresh], dim=1)  # the same targets, nothing repeated
    found["prefix_matching_control"] = _run(net, control, {"prefix_matching_control": targets})[0][
        "prefix_matching_control"
    ]
    # losses[:, p − 1] is the loss of position p; first copy 2..n, second copy n+2..2n.
    first, second = losses[:, 1:n].mean(), losses[:, n + 1 : 2 * n].mean()

    n_layers, n_heads = len(net.blocks), cfg.n_heads
    random = ("prefix_matching", "prefix_matching_control", "induction_detector")
    out = {k: found[k].mean(axis=1, dtype=np.float64) for k in random}
    out["prefix_matching_excess"] = out["prefix_matching"] - out["prefix_matching_control"]
    attrs: dict[str, Any] = {"n": int(n), "batch": int(batch), "seed": int(seed), "clips": 0}
    if per_frame is not None:
        attrs["tokens_per_frame"] = int(per_frame)
        attrs["n_confounded"] = int(confounded_length(n, per_frame))
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
    data["prefix_matching_control"] = (
        ("layer", "head"),
        out["prefix_matching_control"],
        {"long_name": "prefix matching score on [start; r; r′] (no repetition), the same targets"},
    )
    data["prefix_matching_excess"] = (
        ("layer", "head"),
        out["prefix_matching_excess"],
        {"long_name": "prefix matching score minus its no-repetition control"},
    )
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


def induction_across_checkpoints(
    models_or_names: Sequence[Any], *, trust_code: bool = False, **kwargs: Any
) -> xr.Dataset:
    """`induction_scores` of each checkpoint (a name or path, a Checkpoint, or a Toto) stacked along `checkpoint`.

    Keyword arguments go to `induction_scores` (the same clips for every model). Sort the input by
    training step to plot emergence; `step` comes from each checkpoint's training metadata.
    """
    from toto_lens.checkpoints import load_checkpoint

    results = []
    for item in models_or_names:
        loaded = load_checkpoint(item, trust_code=trust_code) if isinstance(item, str) else item
        results.append(induction_scores(loaded, **kwargs))
    return stack_checkpoints(results)
