"""One batch through the model with hooks that reduce on the fly: what a batch contributes to the store.

The residual stream of every asked layer is reduced inside its hook, as soon as the layer has computed
it, to the per-frame means (and from them the clip mean), and kept whole only for the clips that want
per-token activations; attention patterns are reduced to frame-to-frame mass the same way. So memory
holds one layer's full activations at a time, not all of them (TransformerLens's `run_with_cache` holds
every layer, then reduces). The per-token loss comes from the logits of the same forward pass.

Frame-to-frame attention alone (`--attn frame`, no patterns) keeps the fast fused attention: the rotated
queries and keys of each block (`attn.hook_rot_q` / `hook_rot_k`) are reduced to scores a query frame or
two at a time, so no (B, H, T, T) pattern is ever held (see `frame_attention_from_scores`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from toto_lens.data import Layout
from toto_lens.run.hooks import capture
from toto_lens.store.schema import ExtractRequest

_DTYPES = {"float16": torch.float16, "float32": torch.float32}
_AUTOCAST = {"bfloat16": torch.bfloat16, "float16": torch.float16}  # float32: no autocast


def hook_names(request: ExtractRequest) -> dict[str, int]:
    """Hook name → layer number for the residual stream and, when patterns are asked, the patterns (which
    then give the frame-to-frame mass as well); frame mass alone reads the rotated queries and keys."""
    names = {("hook_embed" if n == 0 else f"blocks.{n - 1}.hook_resid_post"): n for n in request.layers}
    blocks = [n for n in request.layers if n > 0]
    if "pattern" in request.attn:
        names.update({f"blocks.{n - 1}.attn.hook_pattern": n for n in blocks})
    elif "frame" in request.attn:
        names.update({f"blocks.{n - 1}.attn.hook_{qk}": n for n in blocks for qk in ("rot_q", "rot_k")})
    return names


def frame_means(x: torch.Tensor, layout: Layout) -> torch.Tensor:
    """(B, T, D) residual stream → (B, F, D) mean over each frame's tokens (positions 1 … T−2)."""
    B, _, D = x.shape
    return x[:, 1:-1].reshape(B, layout.frames, layout.tokens_per_frame, D).float().mean(2)


def frame_attention(pattern: torch.Tensor, layout: Layout) -> torch.Tensor:
    """(B, H, T, T) pattern → (B, H, F, F): per query frame, the weight on each key frame, averaged."""
    B, H = pattern.shape[:2]
    F_, P = layout.frames, layout.tokens_per_frame
    vis = pattern[:, :, 1:-1, 1:-1].float().reshape(B, H, F_, P, F_, P)  # (B, H, qf, qp, kf, kp)
    return vis.sum(-1).mean(3)


def frame_attention_from_scores(
    q: torch.Tensor, k: torch.Tensor, scale: float, layout: Layout, queries: int = 64
) -> torch.Tensor:
    """`frame_attention` of softmax(causal(q @ kᵀ · scale)) for q, k (B, H, T, hd), computed a block of
    whole query frames (about `queries` positions, at least one frame) at a time against only the keys
    it can see: the same
    numbers, without the (B, H, T, T) pattern in memory. Small blocks stay in cache: at toto-small's
    sizes blocks of 64 queries (one frame of 8×8 tokens) ran 2× faster than blocks of 256."""
    B, H = q.shape[:2]
    F_, P = layout.frames, layout.tokens_per_frame
    out = torch.zeros(B, H, F_, F_)
    step = max(1, queries // P)
    for f0 in range(0, F_, step):
        f1 = min(F_, f0 + step)
        lo, hi = 1 + f0 * P, 1 + f1 * P  # query positions of frames f0 … f1−1; they see keys < hi
        scores = (q[:, :, lo:hi] @ k[:, :, :hi].transpose(-2, -1)).float() * scale  # (B, H, hi−lo, hi)
        future = torch.arange(hi, device=q.device)[None, :] > torch.arange(lo, hi, device=q.device)[:, None]
        weights = scores.masked_fill_(future, float("-inf")).softmax(-1)[..., 1:]  # keys of frames < f1
        out[:, :, f0:f1, :f1] = weights.reshape(B, H, f1 - f0, P, f1, P).sum(-1).mean(3).cpu()
    return out


def next_token_loss(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each next token, (B, T−1) float32, from logits (B, T, V) and tokens (B, T).

    Taken over all B·T rows of the logits as they lie in memory, the last position given a stand-in
    target and dropped: slicing off the last position first would copy the logits into the row layout
    `F.cross_entropy` needs: 1.55-1.8× the time of this, and log-sum-exp less the target 1.06-1.36×
    (`benchmarks/bench_extract.py --loss`)."""
    B, T, V = logits.shape
    targets = torch.cat([tokens[:, 1:], tokens[:, -1:]], dim=1)  # position T−1 predicts nothing: dropped
    nll = F.cross_entropy(logits.float().reshape(B * T, V), targets.reshape(B * T), reduction="none")
    return nll.view(B, T)[:, :-1]


@torch.no_grad()
def run_batch(
    model: torch.nn.Module,
    tokens: torch.Tensor,
    layout: Layout,
    request: ExtractRequest,
    *,
    token_rows: int,
    pattern_rows: int,
) -> dict[str, np.ndarray]:
    """Forward one batch (B, T) and return each cache variable's slice for it, layers stacked in order.

    token_rows / pattern_rows: how many leading clips of the batch keep per-token activations / patterns.
    """
    names = hook_names(request)
    position = {layer: i for i, layer in enumerate(request.layers)}
    out_dtype = _DTYPES[request.dtype]
    parts: dict[str, dict[int, Any]] = {k: {} for k in ("pooled", "frame", "token", "attn_frame", "pattern")}
    queries: list[torch.Tensor] = []  # a block's rotated queries, until its keys arrive

    def reduce(name: str, value: torch.Tensor) -> None:
        layer = names[name]
        if name.endswith("hook_rot_q"):
            queries.append(value.transpose(1, 2))  # (B, H, T, hd); its keys come next
            return
        if name.endswith("hook_rot_k"):
            attn = model.blocks[layer - 1].attn
            k = value.transpose(1, 2).repeat_interleave(attn.n_heads // attn.kv_heads, dim=1)  # (B, H, T, hd)
            parts["attn_frame"][layer] = frame_attention_from_scores(queries.pop(), k, attn.scale, layout)
            return
        if name.endswith("hook_pattern"):
            if "frame" in request.attn:
                parts["attn_frame"][layer] = frame_attention(value, layout).cpu()
            if "pattern" in request.attn and pattern_rows:
                parts["pattern"][layer] = value[:pattern_rows].to(torch.float16).cpu()
            return
        means = frame_means(value, layout)  # (B, F, D) float32
        if "frame" in request.acts:
            parts["frame"][layer] = means.to(out_dtype).cpu()
        if "pooled" in request.acts:
            # every frame has the same number of tokens, so the mean of frame means is the clip mean
            parts["pooled"][layer] = means.mean(1).to(out_dtype).cpu()
        if "token" in request.acts and token_rows:
            parts["token"][layer] = value[:token_rows].to(out_dtype).cpu()

    low = _AUTOCAST.get(request.autocast)
    with (
        capture(model, list(names), reduce),
        torch.autocast(tokens.device.type, dtype=low, enabled=low is not None),
    ):
        logits = model(tokens)  # (B, T, V)
    loss = torch.full(tokens.shape, float("nan"))
    loss[:, 1:] = next_token_loss(logits, tokens).cpu()
    result = {"tokens": tokens.cpu().numpy().astype(np.int32), "loss": loss.numpy()}
    for key, var in (("pooled", "acts_pooled"), ("frame", "acts_frame"), ("token", "acts_token")):
        if parts[key]:
            result[var] = torch.stack([parts[key][layer] for layer in request.layers], 1).numpy()
    for key, var in (("attn_frame", "attn_frame"), ("pattern", "attn_pattern")):
        if parts[key]:
            result[var] = _with_layer0(parts[key], request.layers, position)
    return result


def _with_layer0(per_layer: dict[int, torch.Tensor], layers: tuple[int, ...], position) -> np.ndarray:
    """Stack attention results along layer; layer 0 (embeddings, no attention) stays NaN."""
    some = next(iter(per_layer.values()))
    out = np.full((some.shape[0], len(layers), *some.shape[1:]), np.nan, dtype=some.numpy().dtype)
    for layer, value in per_layer.items():
        out[:, position[layer]] = value.numpy()
    return out
