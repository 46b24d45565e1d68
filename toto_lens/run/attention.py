"""Attention patterns of one clip, read through `capture`, and their per-head summaries.

The cache keeps full patterns (`attn_pattern`) for a few clips only; for any other clip this module runs
the model on that one clip. Patterns come from `blocks.{l-1}.attn.hook_pattern` (layer l ≥ 1 is block
l − 1, the cache's numbering), which switches only those blocks to eager attention for the call. The
summaries are reduced inside each layer's hook by the pure functions of `toto_lens.analysis.attention`,
so only one layer's (1, H, T, T) pattern exists at a time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import xarray as xr

from toto_lens.analysis import AnalysisError
from toto_lens.analysis.attention import attention_distances, frame_mass
from toto_lens.data.layout import Layout
from toto_lens.run.hooks import capture


def _model(model_or_checkpoint: Any) -> Any:
    """The Toto of a Toto, a loaded Checkpoint, or a checkpoint name or folder."""
    if isinstance(model_or_checkpoint, str | os.PathLike):
        from toto_lens.checkpoints import load_checkpoint

        model_or_checkpoint = load_checkpoint(model_or_checkpoint)
    net = getattr(model_or_checkpoint, "model", model_or_checkpoint)
    if not hasattr(net, "blocks") or not hasattr(net, "config"):
        raise AnalysisError(
            f"expected a Toto model or a Checkpoint, got {type(model_or_checkpoint).__name__}"
        )
    return net


def _layers(net: Any, layers: int | Sequence[int] | None) -> list[int]:
    n = len(net.blocks)
    chosen = list(range(1, n + 1)) if layers is None else [layers] if np.ndim(layers) == 0 else list(layers)
    bad = [layer for layer in chosen if not 1 <= int(layer) <= n]
    if bad or not chosen:
        raise AnalysisError(f"layers {bad or chosen}: a model of {n} blocks has attention in layers 1 … {n}")
    return [int(layer) for layer in chosen]


def _tokens(net: Any, tokens: Any) -> Any:
    """One clip's ids as a (1, T) int64 tensor on the model's device."""
    import torch

    ids = np.asarray(tokens.values if isinstance(tokens, xr.DataArray) else tokens)
    if ids.ndim == 2 and ids.shape[0] == 1:
        ids = ids[0]
    if ids.ndim != 1:
        raise AnalysisError(f"one clip's tokens are (T,) or (1, T), got {ids.shape}")
    if ids.size > net.config.context_length:
        raise AnalysisError(
            f"a clip of {ids.size} tokens is longer than the context ({net.config.context_length})"
        )
    device = next(net.parameters()).device
    return torch.as_tensor(ids.astype(np.int64), device=device)[None]


class _Done(Exception):
    """Raised from the last chosen layer's hook: the blocks above it need not run."""


def _forward(net: Any, tokens: Any, layers: list[int], fn: Callable[[int, Any], None]) -> None:
    """Run one clip, handing each chosen layer's pattern (H, T, T) to fn(layer, pattern) as it is made;
    the forward pass stops after the highest chosen layer."""
    import torch

    names = {f"blocks.{layer - 1}.attn.hook_pattern": layer for layer in layers}
    last = max(layers)

    def hand(name: str, pattern: Any) -> None:
        fn(names[name], pattern[0])
        if names[name] == last:
            raise _Done

    try:
        with torch.inference_mode(), capture(net, list(names), hand):
            net(_tokens(net, tokens))
    except _Done:
        pass


def clip_patterns(
    model_or_checkpoint: Any, tokens: Any, layers: int | Sequence[int] | None = None
) -> xr.DataArray:
    """The softmax patterns of one clip: (layer, head, qpos, kpos) float32 on the CPU.

    tokens: the clip's ids (T,) or (1, T); layers: cache numbers (l ≥ 1 = block l − 1), default every
    block. Holds len(layers) · H · T² floats; for many layers of a long context prefer
    `clip_attention_summary`, which keeps none of them.
    """
    net = _model(model_or_checkpoint)
    chosen = _layers(net, layers)
    found: dict[int, np.ndarray] = {}
    _forward(net, tokens, chosen, lambda layer, p: found.__setitem__(layer, p.float().cpu().numpy()))
    T = found[chosen[0]].shape[-1]
    return xr.DataArray(
        np.stack([found[layer] for layer in chosen]),
        dims=("layer", "head", "qpos", "kpos"),
        coords={
            "layer": chosen,
            "head": np.arange(net.config.n_heads),
            "qpos": np.arange(T),
            "kpos": np.arange(T),
        },
        name="attn_pattern",
    )


def clip_attention_summary(
    model_or_checkpoint: Any, tokens: Any, layout: Layout, layers: int | Sequence[int] | None = None
) -> xr.Dataset:
    """Per (layer, head) of one clip: `attention_distances` and `frame_mass` (layer, head, qframe, kframe).

    Each layer's pattern is reduced on the model's device inside its hook and then dropped.
    """
    net = _model(model_or_checkpoint)
    chosen = _layers(net, layers)
    found: dict[int, xr.Dataset] = {}

    def reduce(layer: int, pattern: Any) -> None:
        one = attention_distances(pattern, layout, dims=["head"])
        if pattern.shape[-1] >= 1 + layout.frames * layout.tokens_per_frame:
            one["frame_mass"] = frame_mass(pattern, layout, dims=["head"])
        found[layer] = one

    _forward(net, tokens, chosen, reduce)
    out = xr.concat(
        [found[layer] for layer in chosen], dim="layer", data_vars="all", coords="different",
        compat="equals", join="outer", combine_attrs="override",
    )  # fmt: skip
    n = len(net.blocks)
    return out.assign_coords(
        layer=chosen, head=np.arange(net.config.n_heads), depth=("layer", np.array(chosen) / n)
    )
