"""The logit lens on a model: every layer's residual stream through the final norm and output head.

Residual streams come through `capture` (`hook_embed` = layer 0, `blocks.{i}.hook_resid_post` = layer
i + 1, the cache's numbering). Clips run a batch at a time, and each layer is turned into logits and
reduced to per-token KL and agreement (`toto_lens.analysis.lens.token_divergence`) before the next, so
only one layer's (batch, position, vocab) logits exist at once. The final layer's logits are the
model's output; the control is the final prediction of the next clip in the batch at the same position.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from toto_lens.analysis import AnalysisError
from toto_lens.analysis.lens import logit_lens, predicted_frame, token_divergence
from toto_lens.progress import Progress, report
from toto_lens.run.hooks import capture


def lens_logits(net: Any, resid: Any) -> Any:
    """The output head's logits of a residual stream (…, dim): final norm, head, μP output scale."""
    logits = net.output(net.norm(resid))
    return logits * net.output_scale if net.output_scale != 1.0 else logits


def run_lens(
    model: Any, tokens: Any, pos_frame: Any, *, batch: int = 8, progress: Progress | None = None
) -> xr.Dataset:
    """KL(final ‖ layer) and top-1 agreement per (layer, frame) of a model on clips' tokens (clip, position).

    model: a Toto or a loaded Checkpoint; pos_frame: (position,) each position's frame (-1: no frame).
    """
    import torch

    net = getattr(model, "model", model)
    ids = np.asarray(tokens.values if isinstance(tokens, xr.DataArray) else tokens, dtype=np.int64)
    if ids.ndim != 2 or ids.shape[0] == 0:
        raise AnalysisError(f"the logit lens needs clips' tokens (clip, position), got shape {ids.shape}")
    n_layers = len(net.blocks)
    names = ["hook_embed", *(f"blocks.{i}.hook_resid_post" for i in range(n_layers))]
    device = next(net.parameters()).device
    kl = np.zeros((n_layers + 1, *ids.shape), np.float32)
    agree = np.zeros_like(kl)
    control_kl = np.full(ids.shape, np.nan, np.float32)
    control_agree = np.full(ids.shape, np.nan, np.float32)
    was_training = net.training
    net.eval()
    try:
        for start in range(0, len(ids), batch):
            part = torch.as_tensor(ids[start : start + batch], device=device)
            rows = slice(start, start + len(part))
            with torch.inference_mode(), capture(net, names) as acts:
                final = net(part).float()
                for layer, name in enumerate(names):
                    k, a = token_divergence(lens_logits(net, acts[name]), final)
                    kl[layer, rows], agree[layer, rows] = k.cpu().numpy(), a.cpu().numpy()
                    del acts[name]  # this layer is reduced; let it go
                if len(part) > 1:
                    k, a = token_divergence(final.roll(1, dims=0), final)
                    control_kl[rows], control_agree[rows] = k.cpu().numpy(), a.cpu().numpy()
            report(progress, "logit lens", rows.stop, len(ids), "clips")
    finally:
        net.train(was_training)
    return logit_lens(
        kl, agree, predicted_frame(pos_frame), layer=np.arange(n_layers + 1),
        control_kl=control_kl, control_agreement=control_agree,
    )  # fmt: skip


def top1_frames(model: Any, tokens: Any, layout: Any) -> np.ndarray:
    """Each layer's top-1 prediction of every visual token of one clip, as codes (layer, frame, row, col).

    Token t's prediction is read at position t − 1 (teacher forcing: the clip's own earlier tokens);
    a prediction that is no visual code is clipped into the code range.
    """
    import torch

    net = getattr(model, "model", model)
    ids = torch.as_tensor(
        np.asarray(tokens, dtype=np.int64).reshape(1, -1), device=next(net.parameters()).device
    )
    names = ["hook_embed", *(f"blocks.{i}.hook_resid_post" for i in range(len(net.blocks)))]
    visual = np.flatnonzero(layout.visual)
    out = []
    with torch.inference_mode(), capture(net, names) as acts:
        net(ids)
        for name in names:
            top = lens_logits(net, acts[name][0, visual - 1]).argmax(-1).cpu().numpy()
            out.append(top)
    codes = np.clip(np.stack(out) - layout.code_offset, 0, None)
    return codes.reshape(len(names), layout.frames, layout.rows, layout.cols)
