"""Probe fitting for `probing.py`, batched over layers: every layer's probe is trained in one pass.

Follows PROTOCOLS.md ("Probing") and dinov2's `eval/linear.py` (a grid of probes trained together on
frozen features): parameters carry a leading (layer, grid) batch, and since the problems share no
parameter and the optimiser acts per problem, fitting them together gives the same probes as fitting
them one by one.

`fit_linear` standardises with the train rows' statistics (MAE: BatchNorm without affine), then fits
multinomial logistic regression, mean cross-entropy + λ/2·|W|² (bias free; scikit-learn's
`C = 1 / (λ · n_train)`), by an L-BFGS whose line search and history are per problem; or ridge least
squares, mean squared error + λ·|W|², in closed form. The attention probes are in `attention_probes.py`.

A grid of more than one value (L2 strengths here, learning rates there) is chosen per layer on an inner
validation fold carved out of the train clips, then the chosen probe is refit on all train clips; the
outer val clips are never looked at before the final score. This module imports torch; `probing.py`
loads it only inside `probe_layers`.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Rows:
    """Row indices of the outer split and of the inner fold (a split of `train`) used to pick λ or LR."""

    train: np.ndarray
    val: np.ndarray
    inner_train: np.ndarray
    inner_val: np.ndarray


@dataclass(frozen=True)
class LayerScores:
    """Per layer: the score on the train and val rows, and the grid value chosen (λ or learning rate)."""

    train: np.ndarray
    val: np.ndarray
    chosen: np.ndarray


def scores(out: torch.Tensor, y: torch.Tensor, classes: int) -> torch.Tensor:
    """Accuracy (classes > 0) or R² averaged over outputs, of outputs (problem, grid, rows, out) against
    y (problem, rows) for classes, (problem, rows, k) for regression."""
    if classes:
        return (out.argmax(-1) == y[:, None]).float().mean(-1)
    resid = ((y[:, None] - out) ** 2).sum(-2)  # (problem, grid, k)
    total = ((y - y.mean(1, keepdim=True)) ** 2).sum(1).clamp_min(1e-12)  # (problem, k)
    return (1 - resid / total[:, None]).mean(-1)


def pick(inner: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Index into `grid` of the best inner-val score per layer (inner: grid × layer); ties → larger value,
    i.e. the more regularised λ or the larger LR, whichever the grid holds."""
    order = np.argsort(grid, kind="stable")[::-1]  # largest first, so argmax keeps the largest of ties
    return order[np.argmax(np.nan_to_num(inner[order], nan=-np.inf), axis=0)]


SMALL_WORK = 1 << 24  # layers × λ × rows × features × classes below which one thread is faster

# --- linear probes -----------------------------------------------------------------------------------


def _lbfgs(fg, w: torch.Tensor, tol: float, max_iter: int, history: int = 10) -> torch.Tensor:
    """Minimise independent problems at once: fg(w) → (loss (P,), grad like w), w (P, ...).

    torch.optim.LBFGS on the summed loss would share one line search and one curvature history among
    all problems, and the slowest problem would hold every other back (3× the iterations measured on
    9 layers × 4 λ). Here the two-loop recursion, the backtracking (Armijo) line search and the stopping
    test (max |grad| ≤ tol, scikit-learn's rule) are per problem; only the tensor ops are shared.
    """
    shape, n = w.shape, w.shape[0]
    w = w.reshape(n, -1)

    def f(v: torch.Tensor):
        loss, grad = fg(v.view(shape))
        return loss, grad.reshape(n, -1)

    loss, grad = f(w)
    pairs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (s, y, 1/s·y or 0 if skipped)
    gamma = w.new_ones(n, 1)
    active = grad.abs().amax(1) > tol
    for it in range(max_iter):
        if not active.any():
            break
        q, alphas = grad.clone(), []  # the two-loop recursion, each dot product per problem
        for s, y, rho in reversed(pairs):
            alphas.append(rho * torch.linalg.vecdot(s, q)[:, None])
            q.addcmul_(alphas[-1], y, value=-1)
        direction = q.mul_(gamma)
        for (s, y, rho), a in zip(pairs, reversed(alphas), strict=True):
            direction.addcmul_(torch.addcmul(a, rho, torch.linalg.vecdot(y, direction)[:, None], value=-1), s)
        direction.neg_()
        slope = (grad * direction).sum(1)
        uphill = slope >= 0  # rounding can spoil the curvature pairs: fall back to steepest descent
        direction = torch.where(uphill[:, None], -grad, direction) * active[:, None]
        slope = torch.where(uphill, -(grad * grad).sum(1), slope)
        # First step: no curvature known yet, so a step of length ~1 in the largest coordinate.
        step = torch.ones_like(slope) if it else (1 / grad.abs().sum(1)).clamp(max=1.0)
        for _ in range(20):
            w_new = w + step[:, None] * direction
            loss_new, grad_new = f(w_new)
            # Armijo, or, once the decrease is below float32's resolution of the loss, a step that at
            # least flattens the slope along the direction (Hager-Zhang's approximate Wolfe test).
            flatter = (grad_new * direction).sum(1).abs() <= 0.9 * slope.abs()
            ok = (loss_new <= loss + 1e-4 * step * slope) | ((loss_new <= loss + 1e-6 * loss.abs()) & flatter)
            ok |= ~active
            if ok.all():
                break
            step = torch.where(ok, step, step / 2)
        # A problem whose line search found nothing is as close as float32 can tell: stop it where it is.
        keep = (ok & active)[:, None]
        w_new, grad_new = torch.where(keep, w_new, w), torch.where(keep, grad_new, grad)
        loss_new = torch.where(keep[:, 0], loss_new, loss)
        s, y = w_new - w, grad_new - grad
        sy = (s * y).sum(1, keepdim=True)
        good = (sy > 1e-10) & keep  # a pair without positive curvature would break the update: skip it
        pairs = [*pairs[-(history - 1) :], (s, y, torch.where(good, 1 / sy.clamp_min(1e-30), 0.0))]
        gamma = torch.where(good, sy / (y * y).sum(1, keepdim=True).clamp_min(1e-30), gamma)
        w, loss, grad = w_new, loss_new, grad_new
        active &= ok & (grad.abs().amax(1) > tol)
    return w.view(shape)


def _logistic(z, y, lam, classes: int, w0: torch.Tensor, tol: float, max_iter: int) -> torch.Tensor:
    """Weights (layer, grid, classes, d + 1) of multinomial logistic regressions, bias in the last column.

    z: standardised features (layer, rows, d); y: (layer, rows) class indices; lam: (layer, grid).
    """
    layers, rows, d = z.shape
    grid = lam.shape[1]
    zt = z.transpose(1, 2).contiguous()  # (layer, d, rows)
    picked = y.view(layers, 1, 1, rows).expand(layers, grid, 1, rows)
    minus_one = torch.full(picked.shape, -1.0)

    def fg(w: torch.Tensor):
        w = w.view(layers, grid, classes, d + 1)
        weight = w[..., :d].reshape(layers, grid * classes, d)
        bias = w[..., d].reshape(layers, grid * classes, 1)
        # Rows last: log_softmax over a middle dim of 10 classes runs ~10× faster than over a last dim
        # of 10, and (grid·classes, d) @ (d, rows) is the better-shaped product on a CPU.
        logp = torch.baddbmm(bias, weight, zt).view(layers, grid, classes, rows).log_softmax(2)
        nll = -logp.gather(2, picked).mean(-1)[..., 0]  # (layer, grid)
        loss = nll + 0.5 * lam * w[..., :d].pow(2).sum((2, 3))
        # softmax − onehot, per row; exp of a log-probability below −80 would be a float32 denormal,
        # 10× slower to compute, for a gradient term < 1e-34.
        dlogits = logp.clamp_(min=-80.0).exp_().scatter_add_(2, picked, minus_one).div_(rows)
        gw = torch.bmm(dlogits.view(layers, grid * classes, rows), z).view(layers, grid, classes, d)
        grad = torch.cat([gw + lam[..., None, None] * w[..., :d], dlogits.sum(-1, keepdim=True)], -1)
        return loss.reshape(-1), grad.reshape(layers * grid, classes, d + 1)

    w = _lbfgs(fg, w0.reshape(layers * grid, classes, d + 1), tol, max_iter)
    return w.view(layers, grid, classes, d + 1)


def _apply(z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Outputs (layer, grid, rows, out) of weights w (layer, grid, out, d + 1) on z (layer, rows, d)."""
    return torch.einsum("lnd,lgod->lgno", z, w[..., :-1]) + w[..., -1][:, :, None, :]


def _ridge(z: torch.Tensor, y: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Weights (layer, grid, out, d + 1) of ridge regressions, intercept unpenalised (fit on centred data).

    z: (layer, rows, d); y: (layer, rows, out); lam: (layer, grid)."""
    zm, ym = z.mean(1, keepdim=True), y.mean(1, keepdim=True)
    zc, yc = z - zm, y - ym
    rows = z.shape[1]
    gram = zc.transpose(1, 2) @ zc / rows  # (layer, d, d)
    cross = zc.transpose(1, 2) @ yc / rows  # (layer, d, out)
    # One eigendecomposition per layer serves every λ of the grid.
    evals, evecs = torch.linalg.eigh(gram)
    proj = evecs.transpose(1, 2) @ cross  # (layer, d, out)
    weight = torch.einsum("lde,lge,leo->lgod", evecs, 1 / (evals[:, None, :] + lam[..., None]), proj)
    bias = ym - torch.einsum("ld,lgod->lgo", zm[:, 0], weight)  # (layer, 1, out) - (layer, grid, out)
    return torch.cat([weight, bias[..., None]], -1)


def fit_linear(
    x: np.ndarray,
    y: np.ndarray,
    rows: Rows | Sequence[Rows],
    *,
    classes: int,
    l2: tuple[float, ...],
    tol: float = 1e-4,
    max_iter: int = 500,
) -> LayerScores:
    """Linear probes of every layer at once. x: (layer, rows, d); y: (rows,) ints if classes else (rows, k).

    With a sequence of `Rows` (one split per seed) every (seed, layer, λ) problem is fitted in the same
    batch, and the scores are (seed, layer); with one `Rows` they are (layer,). Splits of one task have
    the same sizes for every seed (the stratified counts depend on the class counts only); splits that do
    not are fitted one seed at a time.
    """
    many = not isinstance(rows, Rows)
    splits = list(rows) if many else [rows]
    sizes = {tuple(len(getattr(r, f)) for f in ("train", "val", "inner_train", "inner_val")) for r in splits}
    if len(sizes) > 1:
        parts = [fit_linear(x, y, r, classes=classes, l2=l2, tol=tol, max_iter=max_iter) for r in splits]
        return LayerScores(*(np.stack([getattr(p, f) for p in parts]) for f in ("train", "val", "chosen")))
    work = len(splits) * x.shape[0] * len(l2) * x.shape[1] * x.shape[2] * max(classes, 1)
    with _threads_for(work):
        out = _fit_linear(x, y, splits, classes=classes, l2=l2, tol=tol, max_iter=max_iter)
    return out if many else LayerScores(out.train[0], out.val[0], out.chosen[0])


@contextmanager
def _threads_for(work: int):
    """One intra-op thread for small problems: there each of the optimiser's many small tensor ops costs
    more to hand out to threads than to compute (up to 2× slower with 2 threads at 5 layers × 64 features,
    measured in benchmarks/bench_probing.py); large problems keep torch's setting."""
    before = torch.get_num_threads()
    if work < SMALL_WORK:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _fit_linear(x, y, splits: list[Rows], *, classes: int, l2, tol: float, max_iter: int) -> LayerScores:
    xt = torch.as_tensor(x, dtype=torch.float32)
    seeds, (layers, _, d) = len(splits), xt.shape
    # BatchNorm without affine, with the statistics of each seed's own train rows
    z = torch.stack([_standardise(xt, torch.as_tensor(r.train)) for r in splits])  # (seed, layer, rows, d)
    if classes:
        yt = torch.as_tensor(y, dtype=torch.int64)
        out = classes
    else:
        yt = torch.as_tensor(y, dtype=torch.float64).reshape(len(y), -1)
        z = z.double()  # the closed form solves d × d systems: float64 costs little and loses nothing
        out = yt.shape[1]

    def take(field: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (seed·layer, m, d) and targets (seed·layer, m[, k]) of one split field."""
        idx = torch.as_tensor(np.stack([getattr(r, field) for r in splits]))  # (seed, m)
        zz = torch.stack([z[s][:, idx[s]] for s in range(seeds)]).flatten(0, 1)
        yy = yt[idx]  # (seed, m[, k])
        return zz, yy[:, None].expand(seeds, layers, *yy.shape[1:]).flatten(0, 1)

    def fit(zz, yy, lam, w0):
        if classes:
            return _logistic(zz, yy, lam.float(), classes, w0, tol, max_iter)
        return _ridge(zz, yy, lam)

    grid = np.asarray(l2, dtype=np.float64)
    problems = seeds * layers
    chosen = np.zeros(problems, dtype=np.int64)
    if len(grid) > 1:
        (zi, yi), (zv, yv) = take("inner_train"), take("inner_val")
        lam = torch.as_tensor(grid).expand(problems, -1)
        w = fit(zi, yi, lam, torch.zeros(problems, len(grid), out, d + 1))
        inner = scores(_apply(zv, w.to(zv.dtype)), yv, classes)  # (problem, grid)
        chosen = pick(inner.T.numpy(), grid)
    # The refit starts from zero, not from the inner fit: a weakly regularised problem has a flat
    # optimum, and a warm start lands elsewhere on it than a fresh fit (up to 4 val points apart).
    lam = torch.as_tensor(grid[chosen])[:, None]  # (problem, 1)
    (zt, ytr), (zv, yv) = take("train"), take("val")
    w = fit(zt, ytr, lam, torch.zeros(problems, 1, out, d + 1)).to(zt.dtype)

    def per_seed(values: torch.Tensor) -> np.ndarray:
        return values[:, 0].numpy().astype(np.float64).reshape(seeds, layers)

    return LayerScores(
        train=per_seed(scores(_apply(zt, w), ytr, classes)),
        val=per_seed(scores(_apply(zv, w), yv, classes)),
        chosen=grid[chosen].reshape(seeds, layers),
    )


def _standardise(x: torch.Tensor, train: torch.Tensor) -> torch.Tensor:
    var, mean = torch.var_mean(x[:, train], 1, correction=0, keepdim=True)
    return (x - mean) / (var.sqrt() + 1e-5)
