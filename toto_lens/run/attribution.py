"""Integrated gradients over a clip's earlier tokens (captum's `LayerIntegratedGradients`).

For a target token at position p the function attributed is F = log p(token at p | tokens < p): the
log-softmax of the logits at position p − 1 (logits at position i predict token i + 1), read at the
token the clip really has at p. The attributed layer is the token embedding `tok_embeddings`: each
position's attribution is the sum over the embedding's features of (e − e') · ∫ ∂F/∂e along the straight
path from the baseline embedding e' to the clip's e (Sundararajan et al. 2017).

Baseline: every position holds the pad id (`config.pad_id`, 0), a token no clip contains, the same at
every position. F(baseline) is then the model's log-probability of the target with no clip to look at,
and every position's input differs from the baseline's, positions ≥ p included: that those get exactly
zero attribution is a property of the causal model (tested), not of the baseline.

Completeness: Σ attributions = F(input) − F(baseline) up to the integral's discretisation error, which
captum reports per target (`return_convergence_delta=True`); the result keeps it beside F's values. A
target whose error exceeds 1 % of |F(input) − F(baseline)| runs again with twice the steps (up to 256):
a trained model's F can bend sharply along the path, and 32 steps then miss by up to 25 %.

Targets run a few at a time (sorted by position), each batch on the clips' tokens up to its last target
(position max p, itself included): tokens after it cannot change any of the batch's F, and are not fed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from toto_lens.analysis import AnalysisError
from toto_lens.analysis.attribution import attribution_summary
from toto_lens.progress import Progress, report

LAYER = "tok_embeddings"
BASELINE = "pad id (0) at every position"
TOLERANCE = 0.01  # relative completeness gap above which a target runs again with twice the steps
MAX_STEPS = 256
ROWS = 32  # interpolated sequences per forward pass: bounds memory (a 1026-token clip of toto-tiny: ~1 GB)


def _log_prob(net: Any, ids: Any, positions: Any, targets: Any) -> Any:
    """F = log p(targets | ids < positions), one per row: the logits at position − 1, at the target id."""
    import torch

    logits = net(ids)  # (B, T, V); logits at i predict token i + 1
    rows = torch.arange(ids.shape[0], device=ids.device)
    return logits[rows, positions - 1].float().log_softmax(-1)[rows, targets]


def integrated_gradients(
    model: Any,
    tokens: Any,
    positions: Any,
    *,
    n_steps: int = 32,
    batch: int = 4,
    tolerance: float = TOLERANCE,
    max_steps: int = MAX_STEPS,
    baseline_id: int | None = None,
    progress: Progress | None = None,
) -> dict[str, np.ndarray]:
    """Attribution (target, position) of each target's F to every position of its clip, with captum's
    completeness error, F on the input and the baseline and the steps used, each (target,).

    tokens: (target, position) the clip of each target; positions: (target,) each target's position p
    (1 ≤ p < length); batch: targets per call. Each target starts with n_steps interpolation steps; one
    whose relative gap |Σ a − ΔF| / |ΔF| exceeds `tolerance` runs again with twice the steps, up to
    `max_steps` (a trained model's F can bend sharply along the path, and 32 steps then miss by 20 %).
    """
    net = getattr(model, "model", model)
    ids = np.asarray(tokens, dtype=np.int64)
    pos = np.asarray(positions, dtype=np.int64)
    if ids.ndim != 2 or pos.shape != (ids.shape[0],) or ids.shape[0] == 0:
        raise AnalysisError(
            f"expected tokens (target, position) and positions (target,), got {ids.shape}, {pos.shape}"
        )
    if (pos < 1).any() or (pos >= ids.shape[1]).any():
        raise AnalysisError(f"target positions must be 1 … {ids.shape[1] - 1}, got {pos.tolist()}")
    if n_steps < 2:
        raise AnalysisError(f"n_steps={n_steps}: integrated gradients needs at least 2 steps")
    pad = net.config.pad_id if baseline_id is None else int(baseline_id)
    out = {
        "attribution": np.zeros(ids.shape, np.float64),
        **{k: np.zeros(len(pos), np.float64) for k in ("delta", "f_input", "f_baseline")},
        "steps": np.zeros(len(pos), np.int64),
    }
    order = np.argsort(pos, kind="stable")
    was_training = net.training
    grads = [w.requires_grad for w in net.parameters()]
    net.eval()
    try:
        for w in net.parameters():  # gradients flow to the embedding's output only
            w.requires_grad_(False)
        for start in range(0, len(order), batch):
            todo, steps = order[start : start + batch], n_steps
            while todo.size:
                _one_call(net, ids, pos, todo, steps, pad, out)
                change = np.abs(out["f_input"][todo] - out["f_baseline"][todo])
                loose = np.abs(out["delta"][todo]) > tolerance * change
                steps *= 2
                todo = todo[loose] if steps <= max_steps else todo[:0]
            report(progress, "integrated gradients", start + len(order[start : start + batch]), len(order),
                   "targets")  # fmt: skip
    finally:
        for w, g in zip(net.parameters(), grads, strict=True):
            w.requires_grad_(g)
        net.train(was_training)
    return out


def _one_call(net: Any, ids: np.ndarray, pos: np.ndarray, idx: np.ndarray, steps: int, pad: int,
              out: dict[str, np.ndarray]) -> None:  # fmt: skip
    """captum on the targets `idx`, the clips cut after the last of them; results written into `out`."""
    import torch
    from captum.attr import LayerIntegratedGradients

    device = next(net.parameters()).device
    lig = LayerIntegratedGradients(lambda x, p, t: _log_prob(net, x, p, t), getattr(net, LAYER))
    stop = int(pos[idx].max()) + 1
    x = torch.as_tensor(ids[idx, :stop], device=device)
    base = torch.full_like(x, pad)
    at = torch.as_tensor(pos[idx], device=device)
    t = x[torch.arange(len(idx)), at]
    with torch.enable_grad():
        attr, delta = lig.attribute(
            x, baselines=base, additional_forward_args=(at, t), n_steps=steps,
            internal_batch_size=min(ROWS, steps * len(idx)), return_convergence_delta=True,
        )  # fmt: skip
    with torch.no_grad():
        out["f_input"][idx] = _log_prob(net, x, at, t).double().cpu().numpy()
        out["f_baseline"][idx] = _log_prob(net, base, at, t).double().cpu().numpy()
    out["attribution"][idx] = 0.0
    out["attribution"][idx, :stop] = attr.sum(-1).double().cpu().numpy()
    out["delta"][idx] = delta.double().cpu().numpy()
    out["steps"][idx] = steps


def run_attribution(
    model: Any,
    tokens: Any,
    positions: Any,
    pos_frame: Any,
    row: Any,
    col: Any,
    *,
    n_steps: int = 32,
    batch: int = 4,
    progress: Progress | None = None,
) -> xr.Dataset:
    """`integrated_gradients` of each target, summarised by `analysis.attribution.attribution_summary`
    (shares per Δframe and (Δframe, Δrow, Δcol), controls, completeness gap)."""
    raw = integrated_gradients(model, tokens, positions, n_steps=n_steps, batch=batch, progress=progress)
    steps = raw.pop("steps")
    result = attribution_summary(
        raw["attribution"], positions, pos_frame, row, col,
        delta=raw["delta"], f_input=raw["f_input"], f_baseline=raw["f_baseline"],
    )  # fmt: skip
    result.attrs.update({
        "method": "integrated gradients (captum LayerIntegratedGradients, Gauss-Legendre)",
        "layer": LAYER, "baseline": BASELINE, "n_steps": int(n_steps), "max_steps": MAX_STEPS,
        "tolerance": TOLERANCE,
        "baseline_why": "a token no clip holds, the same everywhere: F(baseline) is the target's "
        "log-probability with no clip to look at, and every position differs from it, so zeros at "
        "positions ≥ p come from causality, not from the baseline",
        "function": "log p(token at p | tokens < p), from the logits at position p - 1",
    })  # fmt: skip
    result["steps"] = ("target", steps, {"long_name": "interpolation steps the target ran with"})
    return result
