"""Probe fitting for `probing.py`, batched over layers: every layer's probe is trained in one pass.

Follows PROTOCOLS.md ("Probing") and dinov2's `eval/linear.py` (a grid of probes trained together on
frozen features): parameters carry a leading (layer, grid) batch, and since the problems share no
parameter and the optimiser acts per problem, fitting them together gives the same probes as fitting
them one by one.

`fit_linear` standardises with the train rows' statistics (MAE: BatchNorm without affine), then fits
multinomial logistic regression, mean cross-entropy + λ/2·|W|² (bias free; scikit-learn's
`C = 1 / (λ · n_train)`), by an L-BFGS whose line search and history are per problem, with
scikit-learn's stopping rule (max |grad| ≤ 1e-4, at most 100 iterations); or ridge least squares, mean
squared error + λ·|W|², in closed form. The attention probes are in `attention_probes.py`.

A grid of more than one value (L2 strengths here, learning rates there) is chosen per layer on an inner
validation fold carved out of the train clips, then the chosen probe is refit on all train clips; the
outer val clips are never looked at before the final score. This module imports torch; `probing.py`
loads it only inside `probe_layers`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


# --- linear probes -----------------------------------------------------------------------------------


def _vdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot products of two (problem, n) arrays."""
    return np.einsum("ij,ij->i", a, b)


def _lbfgs(fg, w: np.ndarray, tol: float, max_iter: int, history: int = 5) -> np.ndarray:
    """Minimise independent problems at once: fg(w, idx) → (loss (m,), grad like w) for the problems
    `idx` (m,) still running, w (m, ...); returns the solutions (P, ...) of all P problems.

    torch.optim.LBFGS on the summed loss would share one line search and one curvature history among
    all problems, and the slowest problem would hold every other back (3× the iterations measured on
    9 layers × 4 λ). Here the two-loop recursion, the backtracking (Armijo) line search and the stopping
    test (max |grad| ≤ tol, scikit-learn's rule) are per problem; only the array ops are shared, and a
    problem that stops leaves the batch, so the slowest ones cost only their own share. NumPy rather than
    torch: the optimiser is ~100 small ops per iteration, and numpy's ~1 µs per op against torch's ~4 µs
    is what decides the speed at a small model's sizes (benchmarks/bench_probing.py). Five curvature
    pairs, where scipy keeps ten: on the benchmark's problems the iterations do not grow and each costs
    less (0.150 → 0.118 s at 5 layers × 64 features, the same accuracies within 1 point).
    """
    shape, n = w.shape, w.shape[0]
    out = w.reshape(n, -1).copy()
    idx = np.arange(n)
    w = out.copy()

    def f(v: np.ndarray):
        loss, grad = fg(v.reshape(len(idx), *shape[1:]), idx)
        return loss, grad.reshape(len(idx), -1)

    loss, grad = f(w)
    pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (s, y, 1/s·y or 0 if skipped)
    gamma = np.ones((n, 1), w.dtype)
    active = np.abs(grad).max(1) > tol
    for it in range(max_iter):
        if not active.all():  # stopped problems leave every piece of state
            out[idx[~active]] = w[~active]
            w, loss, grad, gamma, idx = w[active], loss[active], grad[active], gamma[active], idx[active]
            pairs = [(s[active], y[active], rho[active]) for s, y, rho in pairs]
            if not len(idx):
                break
        q, alphas = grad.copy(), []  # the two-loop recursion, each dot product per problem
        for s, y, rho in reversed(pairs):
            alphas.append(rho * _vdot(s, q)[:, None])
            q -= alphas[-1] * y
        direction = q * gamma
        for (s, y, rho), a in zip(pairs, reversed(alphas), strict=True):
            direction += (a - rho * _vdot(y, direction)[:, None]) * s
        direction = -direction
        slope = _vdot(grad, direction)
        uphill = slope >= 0  # rounding can spoil the curvature pairs: fall back to steepest descent
        if uphill.any():
            direction[uphill] = -grad[uphill]
            slope[uphill] = -_vdot(grad[uphill], grad[uphill])
        # First step: no curvature known yet, so a step of length ~1 in the largest coordinate.
        step = np.ones_like(slope) if it else np.minimum(1 / np.abs(grad).sum(1), 1.0)
        for _ in range(20):
            w_new = w + step[:, None] * direction
            loss_new, grad_new = f(w_new)
            # Armijo, or, once the decrease is below float32's resolution of the loss, a step that at
            # least flattens the slope along the direction (Hager-Zhang's approximate Wolfe test).
            flatter = np.abs(_vdot(grad_new, direction)) <= 0.9 * np.abs(slope)
            ok = (loss_new <= loss + 1e-4 * step * slope) | (
                (loss_new <= loss + 1e-6 * np.abs(loss)) & flatter
            )
            if ok.all():
                break
            step = np.where(ok, step, step / 2)
        if not ok.all():  # a line search that found nothing: as close as float32 can tell, stop there
            w_new[~ok], grad_new[~ok], loss_new[~ok] = w[~ok], grad[~ok], loss[~ok]
        s, y = w_new - w, grad_new - grad
        sy = _vdot(s, y)[:, None]
        good = (sy > 1e-10) & ok[:, None]  # a pair without positive curvature would break the update: skip it
        pairs = [
            *pairs[-(history - 1) :],
            (s, y, np.where(good, 1 / np.maximum(sy, 1e-30), 0).astype(w.dtype)),
        ]
        gamma = np.where(good, sy / np.maximum(_vdot(y, y)[:, None], 1e-30), gamma).astype(w.dtype)
        w, loss, grad = w_new, loss_new, grad_new
        active = ok & (np.abs(grad).max(1) > tol)
    out[idx] = w
    return out.reshape(shape)


def _logistic(z: np.ndarray, y: np.ndarray, lam: np.ndarray, classes: int, tol: float, max_iter: int):
    """Weights (layer, grid, classes, d + 1) of multinomial logistic regressions from zero, bias last.

    z: standardised float32 features (layer, rows, d); y: (layer, rows) class indices; lam: (layer, grid).
    """
    layers, rows, d = z.shape
    grid = lam.shape[1]
    z = np.ascontiguousarray(z)
    zt = np.ascontiguousarray(z.transpose(0, 2, 1))  # (layer, d, rows)
    onehot = np.zeros((layers, classes, rows), np.float32)
    np.put_along_axis(onehot, y[:, None, :], 1.0, axis=1)
    lam_flat = lam.reshape(-1).astype(np.float32)
    cache: dict = {}

    def batch(idx: np.ndarray) -> dict:
        """Labels and λ of the problems idx, and their runs by layer (idx is sorted, so the problems of a
        layer are adjacent); made again only when problems have stopped."""
        if "idx" not in cache or not np.array_equal(cache["idx"], idx):
            layer = idx // grid
            cuts = [0, *(np.flatnonzero(np.diff(layer)) + 1), len(idx)]
            runs = [(a, b, layer[a]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
            cache.update(idx=idx, runs=runs, onehot=onehot[layer], lam=lam_flat[idx])
        return cache

    def fg(w: np.ndarray, idx: np.ndarray):
        b = batch(idx)
        m, weight, bias = len(idx), w[..., :d], w[..., d:]  # (m, classes, d), (m, classes, 1)
        # One product per layer for all of its problems: (problems·classes, d) @ (d, rows), rows last,
        # is the best-shaped product, and the softmax then runs over a middle axis of `classes`.
        logits = np.empty((m, classes, rows), np.float32)
        for a, e, layer in b["runs"]:
            np.matmul(weight[a:e].reshape(-1, d), zt[layer], out=logits[a:e].reshape(-1, rows))
        logits += bias
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        total = p.sum(1, keepdims=True)
        nll = (np.log(total).sum((1, 2)) - np.einsum("mkr,mkr->m", logits, b["onehot"])) / rows
        loss = nll + 0.5 * b["lam"] * np.einsum("mkd,mkd->m", weight, weight)
        p /= total
        p -= b["onehot"]  # softmax − onehot, per row
        p /= rows
        grad = np.empty_like(w)
        gw = np.empty((m, classes, d), np.float32)
        for a, e, layer in b["runs"]:
            np.matmul(p[a:e].reshape(-1, rows), z[layer], out=gw[a:e].reshape(-1, d))
        grad[..., :d] = gw + weight * b["lam"][:, None, None]
        grad[..., d] = p.sum(-1)
        return loss, grad

    w0 = np.zeros((layers * grid, classes, d + 1), np.float32)
    return _lbfgs(fg, w0, tol, max_iter).reshape(layers, grid, classes, d + 1)


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
    max_iter: int = 100,
    on_fit: Callable[[], None] | None = None,
) -> LayerScores:
    """Linear probes of every layer at once. x: (layer, rows, d); y: (rows,) ints if classes else (rows, k).

    With a sequence of `Rows` (one split per seed) every (seed, layer, λ) problem is fitted in the same
    batch, and the scores are (seed, layer); with one `Rows` they are (layer,). Splits of one task have
    the same sizes for every seed (the stratified counts depend on the class counts only); splits that do
    not are fitted one seed at a time. `on_fit` is called after each batched fit (the inner fold that
    picks λ, then the refit), for progress.
    """
    many = not isinstance(rows, Rows)
    splits = list(rows) if many else [rows]
    sizes = {tuple(len(getattr(r, f)) for f in ("train", "val", "inner_train", "inner_val")) for r in splits}
    if len(sizes) > 1:
        parts = [
            fit_linear(x, y, r, classes=classes, l2=l2, tol=tol, max_iter=max_iter, on_fit=on_fit)
            for r in splits
        ]
        return LayerScores(*(np.stack([getattr(p, f) for p in parts]) for f in ("train", "val", "chosen")))
    out = _fit_linear(x, y, splits, classes=classes, l2=l2, tol=tol, max_iter=max_iter, on_fit=on_fit)
    return out if many else LayerScores(out.train[0], out.val[0], out.chosen[0])


def _fit_linear(
    x, y, splits: list[Rows], *, classes: int, l2, tol: float, max_iter: int, on_fit=None
) -> LayerScores:
    xt = torch.as_tensor(x, dtype=torch.float32)
    seeds, layers = len(splits), xt.shape[0]
    # BatchNorm without affine, with the statistics of each seed's own train rows
    z = torch.stack([_standardise(xt, torch.as_tensor(r.train)) for r in splits])  # (seed, layer, rows, d)
    if classes:
        yt = torch.as_tensor(y, dtype=torch.int64)
    else:
        yt = torch.as_tensor(y, dtype=torch.float64).reshape(len(y), -1)
        z = z.double()  # the closed form solves d × d systems: float64 costs little and loses nothing

    def take(field: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (seed·layer, m, d) and targets (seed·layer, m[, k]) of one split field."""
        idx = torch.as_tensor(np.stack([getattr(r, field) for r in splits]))  # (seed, m)
        zz = torch.stack([z[s][:, idx[s]] for s in range(seeds)]).flatten(0, 1)
        yy = yt[idx]  # (seed, m[, k])
        return zz, yy[:, None].expand(seeds, layers, *yy.shape[1:]).flatten(0, 1)

    def fit(zz, yy, lam):
        if classes:
            return torch.from_numpy(_logistic(zz.numpy(), yy.numpy(), lam.numpy(), classes, tol, max_iter))
        return _ridge(zz, yy, lam)

    grid = np.asarray(l2, dtype=np.float64)
    problems = seeds * layers
    chosen = np.zeros(problems, dtype=np.int64)
    if len(grid) > 1:
        (zi, yi), (zv, yv) = take("inner_train"), take("inner_val")
        lam = torch.as_tensor(grid).expand(problems, -1)
        w = fit(zi, yi, lam)
        inner = scores(_apply(zv, w.to(zv.dtype)), yv, classes)  # (problem, grid)
        chosen = pick(inner.T.numpy(), grid)
        if on_fit is not None:
            on_fit()
    # The refit starts from zero, not from the inner fit: a weakly regularised problem has a flat
    # optimum, and a warm start lands elsewhere on it than a fresh fit (up to 4 val points apart).
    lam = torch.as_tensor(grid[chosen])[:, None]  # (problem, 1)
    (zt, ytr), (zv, yv) = take("train"), take("val")
    w = fit(zt, ytr, lam).to(zt.dtype)
    if on_fit is not None:
        on_fit()

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
