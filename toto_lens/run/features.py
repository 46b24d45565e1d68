"""Per-frame features of token sequences: a layer's residual stream averaged over each frame's tokens.

What the cache's `acts_frame` holds, computed for sequences that are not in a cache (generated clips), so
that real and generated clips are described by the same numbers (the Fréchet distance of
`studies.generation`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from toto_lens.data import Layout
from toto_lens.errors import ConfigError


def frame_features(
    model: Any, tokens: np.ndarray, layout: Layout, layer: int, *, batch: int = 8
) -> np.ndarray:
    """(clip, frame, feature) float32: the mean of layer `layer`'s residual stream (0 = embeddings, l = after
    block l) over each frame's visual tokens, for sequences `tokens` (clip, layout.length) in that layout."""
    import torch

    from toto_lens.run.hooks import capture

    net = getattr(model, "model", model)
    ids = np.asarray(tokens, dtype=np.int64)
    if ids.ndim != 2 or ids.shape[1] != layout.length:
        raise ConfigError(f"frame features need sequences of {layout.length} tokens, got shape {ids.shape}")
    if not 0 <= layer <= len(net.blocks):
        raise ConfigError(f"layer {layer}: the model has layers 0 … {len(net.blocks)}")
    name = "hook_embed" if layer == 0 else f"blocks.{layer - 1}.hook_resid_post"
    device = next(net.parameters()).device
    frame_of = torch.as_tensor(np.array(layout.frame_of_position), device=device)
    one_hot = torch.nn.functional.one_hot((frame_of + 1).clamp(min=0), layout.frames + 1)[:, 1:].float()
    one_hot = one_hot / one_hot.sum(0, keepdim=True)  # (position, frame): the mean over a frame's tokens
    out = []
    was_training = net.training
    net.eval()
    try:
        for start in range(0, len(ids), batch):
            part = torch.as_tensor(ids[start : start + batch], device=device)
            with torch.inference_mode(), capture(net, [name]) as acts:
                net(part)
                out.append(torch.einsum("bpd,pf->bfd", acts[name].float(), one_hot).cpu().numpy())
    finally:
        net.train(was_training)
    return np.concatenate(out).astype(np.float32)
