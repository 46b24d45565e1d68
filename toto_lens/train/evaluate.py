"""Per-token validation loss and what the demo reports from it: mean loss, loss per frame, unigram entropy.

The per-token loss follows the cache schema (DESIGN.md): loss[clip, position] = −log p(token at position
| earlier tokens), NaN at position 0 where nothing precedes. The per-frame means are the appendix's Fig. 10
on our data; the unigram entropy of the validation tokens is the loss of a model that ignores context, so
a trained model must land well below it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from toto_lens.data import Layout


def autocast(dtype: str, device: torch.device):
    """bf16 autocast context (or a no-op for float32)."""
    enabled = dtype == "bfloat16"
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


@torch.no_grad()
def token_losses(
    model, tokens: np.ndarray, *, batch: int = 16, dtype: str = "float32", device: str | torch.device = "cpu"
) -> np.ndarray:
    """loss (N, L) float32 of every token given the ones before it; NaN at position 0."""
    device = torch.device(device)
    out = np.full(tokens.shape, np.nan, dtype=np.float32)
    for start in range(0, len(tokens), batch):
        x = torch.as_tensor(tokens[start : start + batch], device=device)
        with autocast(dtype, device):
            logits = model(x[:, :-1])  # (B, L-1, V)
        nll = F.cross_entropy(logits.float().transpose(1, 2), x[:, 1:], reduction="none")  # (B, L-1)
        out[start : start + len(x), 1:] = nll.cpu().numpy()
    return out


def loss_sums(losses: np.ndarray, layout: Layout) -> np.ndarray:
    """[sum, count] over all predicted tokens, over visual ones, then per frame: addable across processes."""
    frame = layout.frame_of_position  # (L,) −1 for special tokens
    parts = [losses[:, 1:], losses[:, layout.visual]] + [losses[:, frame == f] for f in range(layout.frames)]
    return np.array(
        [x for part in parts for x in (np.nansum(part), np.isfinite(part).sum())], dtype=np.float64
    )


def report_from_sums(sums: np.ndarray) -> dict[str, float | list[float]]:
    """Mean loss, visual loss, loss per frame, and the first frame against the later ones (Fig. 10)."""
    means = sums[0::2] / np.maximum(sums[1::2], 1)
    per_frame = [float(v) for v in means[2:]]
    later = float(np.mean(per_frame[1:])) if len(per_frame) > 1 else float("nan")
    return {
        "val_loss": float(means[0]),
        "val_loss_visual": float(means[1]),
        "loss_per_frame": per_frame,
        "first_frame_loss": per_frame[0],
        "later_frames_loss": later,
        "first_to_later_ratio": per_frame[0] / later if later > 0 else float("inf"),
    }


def unigram_entropy(tokens: np.ndarray, layout: Layout) -> float:
    """Entropy in nats of the visual tokens' empirical distribution: the loss of a context-free model."""
    counts = np.bincount(tokens[:, layout.visual].ravel())
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())
