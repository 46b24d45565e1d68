"""AdamW with μP-aware parameter groups, and the warmup-cosine learning-rate schedule.

μP (Tensor Programs V; PROTOCOLS.md) lives in three places, each a few lines: the config's
`mup_base_width` (which the model reads for its init, its 1/d attention scale and its 1/m readout
multiplier) and `param_groups` here, which give hidden matrices the learning rate η/m and a weight
decay multiplied by m (MuAdamW: AdamW decays by lr·wd, so the product stays width-independent), while
embeddings, norm gains and the zero-initialised readout keep η. Without μP every group has scale 1.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from toto_lens.train.config import TrainConfig

HIDDEN = ("attn.wq", "attn.wk", "attn.wv", "attn.wo", "mlp.w1", "mlp.w2", "mlp.w3")


def param_groups(model: nn.Module, cfg: TrainConfig, width_mult: float) -> list[dict]:
    """Groups with an `lr_scale` each: hidden matrices, other matrices (embeddings, readout), gains."""
    hidden, vectors, gains = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim < 2:
            gains.append(p)  # RMSNorm gains: no weight decay, as nanoGPT
        elif any(f"{h}." in name for h in HIDDEN):
            hidden.append(p)
        else:
            vectors.append(p)
    m = width_mult if cfg.mup else 1.0
    return [
        {"params": hidden, "lr_scale": 1.0 / m, "weight_decay": cfg.weight_decay * m, "name": "hidden"},
        {"params": vectors, "lr_scale": 1.0, "weight_decay": cfg.weight_decay, "name": "embeddings"},
        {"params": gains, "lr_scale": 1.0, "weight_decay": 0.0, "name": "gains"},
    ]


def make_optimizer(model: nn.Module, cfg: TrainConfig, width_mult: float) -> torch.optim.AdamW:
    groups = [g for g in param_groups(model, cfg, width_mult) if g["params"]]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup over `warmup` steps, then cosine decay to lr · min_lr_ratio at the last step."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    span = max(1, cfg.steps - cfg.warmup)
    progress = min(1.0, (step - cfg.warmup) / span)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group["lr_scale"]
