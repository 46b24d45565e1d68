"""Attention probes of every layer at once (PROTOCOLS.md "Probing"; AIM's attention-pooling classifier).

One learned query per head attends over a layer's token features through learned W_k and W_v (no W_q),
then a linear head (AIM v1 `AttentionPoolingClassifier`); with `mlp=True` the appendix A.10 variant,
cross-attention followed by a residual MLP (V-JEPA's attentive probe). Parameters carry a leading
(grid, layer) batch and AdamW acts elementwise, so training them together gives the same probes as
training them one by one; a grid of learning rates is chosen per layer on the inner fold, as in
`probes.py`. Features are standardised with the train tokens' statistics (MAE: BatchNorm without
affine). This module imports torch; `probing.py` loads it only inside `probe_layers`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from toto_lens.analysis import AnalysisError
from toto_lens.analysis.probes import LayerScores, Rows, pick, scores


@dataclass(frozen=True)
class AttentionConfig:
    """Attention-probe training. The reference recipe (AIM, V-JEPA) is 20-50 epochs with the LR swept in
    {3e-4, 1e-3, 3e-3} and weight decay 0.01-0.05, on ImageNet-sized sets. The defaults here fit a CPU and
    the demo cache (~360 train clips: 10 epochs are ~120 steps), and so take a larger LR: at 3e-3 the
    A.10 MLP variant had not found a planted one-token signal after 10 epochs (0.52 val), at 1e-2 it
    had (0.99). Several `lrs` are chosen per layer on the inner fold, at the cost of one more fit."""

    lrs: tuple[float, ...] = (1e-2,)
    heads: int = 4
    epochs: int = 10
    batch_size: int = 32
    weight_decay: float = 0.05
    mlp_ratio: float = 4.0  # hidden width of the A.10 MLP, × the feature width (V-JEPA's default)


# A float16 cache is turned into float32 once when the copy stays below this, else batch by batch.
FLOAT32_COPY_MAX = 4 << 30


def _batch(x: np.ndarray, rows: np.ndarray) -> torch.Tensor:
    # np.take copies the rows of every layer at memory speed, 2-4× faster than torch's index_select
    # along a middle dim; the result is (layer, rows, token, d), contiguous.
    return torch.from_numpy(np.take(x, rows, axis=1)).float()


def _token_stats(x: np.ndarray, train: np.ndarray, chunk: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std (layer, d) over the train rows' tokens, in chunks of rows."""
    total = torch.zeros(x.shape[0], x.shape[3], dtype=torch.float64)
    square = torch.zeros_like(total)
    for i in range(0, len(train), chunk):
        xb = _batch(x, train[i : i + chunk])  # float32 sums of one chunk, float64 across chunks
        total += xb.sum((1, 2)).double()
        square += xb.pow(2).sum((1, 2)).double()
    count = len(train) * x.shape[2]
    mean = total / count
    return mean.float(), (square / count - mean**2).clamp_min(0).sqrt().float()


def _init(grid: int, layers: int, d: int, out: int, cfg: AttentionConfig, mlp: bool, gen, part=None) -> dict:
    """Parameters with a leading (grid, layer) batch; one independent probe per entry. part = (first,
    total): these are layers first … of `total` fitted in groups; the draws are made for all `total`
    and this group's kept, so a probe's initialisation does not depend on how the layers were grouped."""
    head_dim = d // cfg.heads
    first, total = part if part is not None else (0, layers)

    def normal(*shape, std):
        values = torch.randn(grid, total, *shape, generator=gen) * std
        if total != layers:
            values = values[:, first : first + layers].contiguous()
        return values.requires_grad_()

    def zeros(*shape):
        return torch.zeros(grid, layers, *shape, requires_grad=True)

    params = {
        "query": normal(cfg.heads, head_dim, std=0.02),  # small: attention starts near average pooling
        "w_k": normal(d, cfg.heads, head_dim, std=d**-0.5),
        "w_v": normal(d, cfg.heads, head_dim, std=d**-0.5),
        "w_out": zeros(d, out),
        "b_out": zeros(out),
    }
    if mlp:
        hidden = max(1, round(cfg.mlp_ratio * d))
        params |= {
            "w_1": normal(d, hidden, std=d**-0.5),
            "b_1": zeros(hidden),
            "w_2": normal(hidden, d, std=hidden**-0.5),
            "b_2": zeros(d),
        }
    return params


def _forward(p: dict, xb: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Outputs (grid, layer, rows, out) for raw features xb (layer, rows, token, d)."""
    grid, layers, heads, head_dim = p["query"].shape
    _, rows, tokens, d = xb.shape
    # q·(W_k z) for standardised z = (x - mean)/std is (W_kᵀq/std)·x plus a per-head constant that
    # softmax ignores: folding W_k and the standardisation into one vector per head makes attention cost
    # token × d per head instead of token × d × d, and the features need no standardised copy.
    u = torch.einsum("glhe,gldhe->lghd", p["query"], p["w_k"]) / std[:, None, None] / head_dim**0.5
    # One (rows·token, d) @ (d, grid·head) product per layer: the layout the features are stored in.
    scores = torch.bmm(xb.view(layers, rows * tokens, d), u.reshape(layers, grid * heads, d).transpose(1, 2))
    attn = scores.view(layers, rows, tokens, grid * heads).softmax(2)
    # Σ a·W_v z = W_v Σ a·z: pool first, project after; Σ a = 1 keeps the standardisation exact.
    pooled = (torch.matmul(attn.transpose(2, 3), xb) - mean[:, None, None]) / std[:, None, None]
    pooled = pooled.view(layers, rows, grid, heads, d)
    z = torch.einsum("lbghd,gldhe->glbhe", pooled, p["w_v"]).flatten(-2)  # (grid, layer, rows, d)
    if "w_1" in p:  # A.10: residual MLP after the cross-attention, pre-norm as in V-JEPA's pooler
        hidden = F.gelu(
            torch.einsum("glbd,gldm->glbm", F.layer_norm(z, (d,)), p["w_1"]) + p["b_1"][:, :, None]
        )
        z = z + torch.einsum("glbm,glmd->glbd", hidden, p["w_2"]) + p["b_2"][:, :, None]
    return torch.einsum("glbd,gldo->glbo", z, p["w_out"]) + p["b_out"][:, :, None]


def _train(
    x, target, idx, lr: torch.Tensor, cfg, mlp, classes, mean, std, seed, on_epoch=None, part=None
) -> dict:
    """AdamW with linear warm-up and cosine decay; lr (grid, layer) is one learning rate per probe."""
    gen = torch.Generator().manual_seed(seed)
    grid, layers = lr.shape
    params = _init(grid, layers, x.shape[3], classes or target.shape[1], cfg, mlp, gen, part)
    state = {k: (torch.zeros_like(v), torch.zeros_like(v)) for k, v in params.items()}
    total = cfg.epochs * math.ceil(len(idx) / cfg.batch_size)
    warmup = max(1, total // 10)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    step = 0
    for _ in range(cfg.epochs):
        order = idx[torch.randperm(len(idx), generator=gen).numpy()]
        for i in range(0, len(order), cfg.batch_size):
            rows = order[i : i + cfg.batch_size]
            pred = _forward(params, _batch(x, rows), mean, std)  # (grid, layer, rows, out)
            yb = target[rows]
            if classes:  # summed over probes, so each probe's gradient is its own mean loss's
                loss = F.cross_entropy(pred.reshape(-1, classes), yb.repeat(grid * layers), reduction="sum")
                loss = loss / len(rows)
            else:
                loss = (pred - yb).pow(2).mean((-2, -1)).sum()
            grads = torch.autograd.grad(loss, list(params.values()))
            step += 1
            progress = (step - warmup) / max(1, total - warmup)
            scale = step / warmup if step <= warmup else 0.5 * (1 + math.cos(math.pi * progress))
            with torch.no_grad():
                for (name, p), g in zip(params.items(), grads, strict=True):
                    m, v = state[name]
                    m.mul_(beta1).add_(g, alpha=1 - beta1)
                    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                    rate = (lr * scale).view(grid, layers, *[1] * (p.dim() - 2))
                    if not name.startswith("b_"):  # decoupled weight decay, biases exempt
                        p.mul_(1 - rate * cfg.weight_decay)
                    denom = (v / (1 - beta2**step)).sqrt_().add_(eps)
                    p.sub_(rate * (m / (1 - beta1**step)) / denom)
        if on_epoch is not None:
            on_epoch()
    return params


@torch.no_grad()
def _evaluate(params, x, target, idx, classes, mean, std, chunk: int = 128) -> torch.Tensor:
    """Scores (grid, layer) on rows idx."""
    outs = [_forward(params, _batch(x, idx[i : i + chunk]), mean, std) for i in range(0, len(idx), chunk)]
    out = torch.cat(outs, 2)  # (grid, layer, rows, out)
    return scores(out, target[idx].expand(out.shape[0], *target[idx].shape), classes)


def fit_attention(
    x: np.ndarray,
    y: np.ndarray,
    rows: Rows,
    *,
    classes: int,
    cfg: AttentionConfig,
    mlp: bool,
    seed: int,
    on_epoch: Callable[[], None] | None = None,
    layers_of: tuple[int, int] | None = None,
) -> LayerScores:
    """Attention probes of every layer at once. x: (layer, rows, token, d), any float dtype.

    `on_epoch` is called after every training epoch (of the inner fold that picks the learning rate,
    then of the refit), for progress. `layers_of` = (first, total) when x holds layers first … of
    `total` fitted a group at a time: each probe is then the one the fit of all `total` at once gives."""
    if x.shape[3] % cfg.heads:
        raise AnalysisError(
            f"feature width {x.shape[3]} is not divisible by heads={cfg.heads}; use AttentionConfig(heads=…)"
        )
    xt = x
    if x.dtype != np.float32 and x.size * 4 <= FLOAT32_COPY_MAX:
        xt = x.astype(np.float32, order="C")  # once, instead of converting every batch of every epoch
    mean, std = _token_stats(xt, rows.train)
    std = std + 1e-5
    if classes:
        target = torch.as_tensor(y, dtype=torch.int64)
    else:
        raw = torch.as_tensor(y, dtype=torch.float32).reshape(len(y), -1)
        centre, spread = raw[rows.train].mean(0), raw[rows.train].std(0, unbiased=False) + 1e-6
        target = (raw - centre) / spread  # R² is unchanged by this affine map, and MSE is balanced
    layers = x.shape[0]
    grid = np.asarray(cfg.lrs, dtype=np.float64)
    chosen = np.zeros(layers, dtype=np.int64)
    if len(grid) > 1:
        lr = torch.as_tensor(grid, dtype=torch.float32)[:, None].expand(-1, layers)
        params = _train(
            xt, target, rows.inner_train, lr, cfg, mlp, classes, mean, std, seed, on_epoch, layers_of
        )
        chosen = pick(_evaluate(params, xt, target, rows.inner_val, classes, mean, std).numpy(), grid)
    lr = torch.as_tensor(grid[chosen], dtype=torch.float32)[None]  # (1, layer)
    params = _train(xt, target, rows.train, lr, cfg, mlp, classes, mean, std, seed, on_epoch, layers_of)
    return LayerScores(
        train=_evaluate(params, xt, target, rows.train, classes, mean, std)[0].numpy().astype(np.float64),
        val=_evaluate(params, xt, target, rows.val, classes, mean, std)[0].numpy().astype(np.float64),
        chosen=grid[chosen],
    )
