"""Head ablation on a model: silence chosen attention heads and measure the per-token loss again.

The intervention sits on the seam `blocks.{i}.attn.hook_z` of `toto_lens.run.hooks`: the input of the
attention's output projection `wo`, every head's output side by side (B, T, H · hd). A forward pre-hook
on `wo` replaces the chosen heads' slices: by 0 (zero ablation) or by that head's mean output over the
clips and positions run (mean ablation, the means read through `capture` of `hook_z` first). Hooks are
removed on exit, exceptions included; with no heads the model runs untouched.

Heads are named (layer, head) with the induction result's numbering (block i is layer i + 1). A spec
is `top:<score>:<k>` (the k heads with the highest score of `toto_lens.run.induction.induction_scores`
on the clips: prev_frame / previous_frame, frame_induction, previous_row, …) or a list `1.2,2.0`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import xarray as xr

from toto_lens.analysis import AnalysisError
from toto_lens.analysis.ablation import ablation_result
from toto_lens.analysis.induction import SCORES
from toto_lens.progress import Progress, report
from toto_lens.run.hooks import capture

MODES = ("zero", "mean")
ALIASES = {"prev_frame": "previous_frame", "prev_row": "previous_row"}
CLIP_SCORES = ("frame_induction", "previous_frame", "previous_row", "repeated_clip")


class HeadSpecError(AnalysisError):
    """A heads spec that names no heads of the model, said in one line."""


def _net(model: Any) -> Any:
    return getattr(model, "model", model)


def parse_heads(spec: str, n_layers: int, n_heads: int) -> tuple[str, int] | list[tuple[int, int]]:
    """`top:<score>:<k>` → (score, k); `1.2,2.0` → [(1, 2), (2, 0)] (layer 1 … n_layers, head 0 … n_heads − 1)."""
    spec = str(spec).strip()
    valid = f"layers 1 … {n_layers}, heads 0 … {n_heads - 1}"
    if spec.startswith("top:"):
        parts = spec.split(":")
        score = ALIASES.get(parts[1], parts[1]) if len(parts) == 3 else ""
        if score not in SCORES or not parts[2].strip().isdigit():
            raise HeadSpecError(
                f"heads {spec!r}: write top:<score>:<k> with score one of prev_frame, "
                f"{', '.join(SCORES)} and k a whole number"
            )
        k = int(parts[2])
        if not 1 <= k <= n_layers * n_heads:
            raise HeadSpecError(f"heads {spec!r}: k must be 1 … {n_layers * n_heads} ({valid})")
        return score, k
    heads: list[tuple[int, int]] = []
    for item in (p.strip() for p in spec.split(",")):
        if not item:
            continue
        layer, dot, head = item.partition(".")
        if not (dot and layer.isdigit() and head.isdigit()):
            raise HeadSpecError(f"heads {spec!r}: {item!r} is no layer.head (e.g. 1.2) nor top:<score>:<k>")
        pair = (int(layer), int(head))
        if not (1 <= pair[0] <= n_layers and 0 <= pair[1] < n_heads):
            raise HeadSpecError(f"heads {spec!r}: head {item} does not exist; the model has {valid}")
        if pair not in heads:
            heads.append(pair)
    return heads


def top_heads(scores: xr.Dataset, score: str, k: int) -> list[tuple[int, int]]:
    """The k (layer, head) pairs with the highest `score` of an induction result, best first."""
    values = np.asarray(scores[score].values, dtype=np.float64)
    if not np.isfinite(values).any():
        raise HeadSpecError(f"no {score} score to rank heads by (it needs video clips)")
    order = np.argsort(-np.nan_to_num(values, nan=-np.inf), axis=None, kind="stable")[:k]
    layers, heads = scores["layer"].values, scores["head"].values
    return [(int(layers[i // values.shape[1]]), int(heads[i % values.shape[1]])) for i in order]


def random_heads(
    n_layers: int, n_heads: int, exclude: Sequence[tuple[int, int]], k: int, draws: int, seed: int = 0
) -> list[list[tuple[int, int]]]:
    """`draws` sets of k heads, none of them in `exclude`, each set different from the others where the
    remaining heads allow it."""
    pool = [(a, b) for a in range(1, n_layers + 1) for b in range(n_heads) if (a, b) not in set(exclude)]
    if k > len(pool):
        raise HeadSpecError(
            f"{k} random heads outside the chosen ones: the model has only {len(pool)} other heads"
        )
    rng = np.random.default_rng(seed)
    out: list[list[tuple[int, int]]] = []
    for _ in range(draws):
        for _attempt in range(100):
            pick = sorted(pool[i] for i in rng.choice(len(pool), size=k, replace=False))
            if pick not in out:
                break
        out.append(pick)
    return out


@contextmanager
def ablated(
    model: Any, heads: Sequence[tuple[int, int]], mode: str = "zero", means: Any = None
) -> Iterator[None]:
    """Run the model with `heads` ((layer, head), layer 1-based) ablated inside the `with` block.

    mode "zero": the heads' outputs (the `hook_z` slices, before `wo`) set to 0; "mean": set to
    `means[layer - 1][head]` (n_layers, n_heads, head_dim), e.g. from `head_means`.
    """
    import torch

    net = _net(model)
    if mode not in MODES:
        raise AnalysisError(f"mode {mode!r}: choose zero or mean")
    if mode == "mean" and means is None:
        raise AnalysisError("mean ablation needs the heads' means (head_means)")
    by_layer: dict[int, list[int]] = {}
    for layer, head in heads:
        by_layer.setdefault(int(layer), []).append(int(head))
    handles = []

    def make(layer: int, idx: list[int]):
        attn = net.blocks[layer - 1].attn
        index = torch.as_tensor(idx)

        def hook(_module: Any, args: tuple) -> tuple:
            z = args[0]
            B, T = z.shape[:2]
            z = z.reshape(B, T, attn.n_heads, attn.head_dim).clone()
            if mode == "zero":
                z[:, :, index] = 0
            else:
                z[:, :, index] = torch.as_tensor(means[layer - 1], device=z.device, dtype=z.dtype)[index]
            return (z.reshape(B, T, -1), *args[1:])

        return attn.wo.register_forward_pre_hook(hook)

    try:
        for layer, idx in by_layer.items():
            handles.append(make(layer, idx))
        yield
    finally:
        for h in handles:
            h.remove()


def head_means(model: Any, ids: np.ndarray, batch: int = 8) -> np.ndarray:
    """Each head's mean output (`hook_z`) over clips and positions: (n_layers, n_heads, head_dim)."""
    import torch

    net = _net(model)
    n_layers, device = len(net.blocks), next(net.parameters()).device
    names = {f"blocks.{i}.attn.hook_z": i for i in range(n_layers)}
    sums = [0.0] * n_layers
    count = 0

    def add(name: str, z: Any) -> None:  # (B, T, H, hd)
        sums[names[name]] = sums[names[name]] + z.double().sum(dim=(0, 1)).cpu()

    with torch.inference_mode(), capture(net, list(names), add):
        for start in range(0, len(ids), batch):
            part = torch.as_tensor(ids[start : start + batch], device=device)
            net(part)
            count += part.shape[0] * part.shape[1]
    return (torch.stack(sums) / count).float().numpy()


def token_losses(model: Any, ids: np.ndarray, batch: int = 8) -> np.ndarray:
    """Per-token loss (clip, position − 1) of clips' tokens, teacher-forced: entry p − 1 is token p's loss."""
    import torch

    net = _net(model)
    device = next(net.parameters()).device
    out = []
    with torch.inference_mode():
        for start in range(0, len(ids), batch):
            part = torch.as_tensor(ids[start : start + batch], device=device)
            logp = torch.log_softmax(net(part).float(), dim=-1)
            out.append(-logp[:, :-1].gather(-1, part[:, 1:, None]).squeeze(-1).cpu())
    return torch.cat(out).numpy()


def run_ablation(
    model: Any,
    tokens: Any,
    pos_frame: Any,
    heads: str | Sequence[tuple[int, int]],
    *,
    mode: str = "zero",
    random_draws: int = 5,
    seed: int = 0,
    layout: Any = None,
    batch: int = 8,
    progress: Progress | None = None,
) -> xr.Dataset:
    """Per-frame loss of clips' tokens (clip, position) intact, with `heads` ablated (a spec or pairs),
    and with as many random other heads ablated, `random_draws` draws. Top-k specs rank heads by
    `induction_scores` on the same clips (needs `layout`)."""
    net = _net(model)
    ids = np.asarray(tokens.values if isinstance(tokens, xr.DataArray) else tokens, dtype=np.int64)
    if ids.ndim != 2 or ids.shape[0] == 0:
        raise AnalysisError(f"head ablation needs clips' tokens (clip, position), got shape {ids.shape}")
    if ids.shape[1] > net.config.context_length:
        raise AnalysisError(
            f"clips of {ids.shape[1]} tokens exceed the context ({net.config.context_length})"
        )
    if mode not in MODES:
        raise AnalysisError(f"mode {mode!r}: choose zero or mean")
    n_layers, n_heads = len(net.blocks), net.config.n_heads
    parsed = parse_heads(heads, n_layers, n_heads) if isinstance(heads, str) else [tuple(h) for h in heads]
    attrs: dict[str, Any] = {"ablation": mode, "seed": int(seed)}
    if isinstance(parsed, tuple):
        from toto_lens.run.induction import induction_scores

        score, k = parsed
        if score not in CLIP_SCORES:
            raise HeadSpecError(f"top:{score}: rank by a clip score ({', '.join(CLIP_SCORES)})")
        scores = induction_scores(model, clips_tokens=ids, layout=layout, max_clips=len(ids), batch=2, n=2)
        chosen = top_heads(scores, score, k)
        attrs.update(
            {"ranked_by": score, "scores": [float(scores[score].sel(layer=a, head=b)) for a, b in chosen]}
        )
    else:
        chosen = list(parsed)
    was_training = net.training
    net.eval()
    try:
        means = head_means(net, ids, batch) if mode == "mean" else None
        steps = 2 + random_draws
        intact = token_losses(net, ids, batch)
        report(progress, "head ablation", 1, steps, "runs")
        with ablated(net, chosen, mode, means):
            hit = token_losses(net, ids, batch)
        report(progress, "head ablation", 2, steps, "runs")
        draws = (
            random_heads(n_layers, n_heads, chosen, len(chosen), random_draws, seed)
            if chosen
            else [[] for _ in range(random_draws)]
        )
        random = []
        for i, draw in enumerate(draws):
            with ablated(net, draw, mode, means):
                random.append(token_losses(net, ids, batch))
            report(progress, "head ablation", 3 + i, steps, "runs")
    finally:
        net.train(was_training)
    result = ablation_result(intact, hit, np.stack(random) if random else np.zeros((0, *intact.shape)),
                             pos_frame, chosen, draws)  # fmt: skip
    result.attrs.update(attrs)
    result.attrs.update({"layers": n_layers, "n_heads": n_heads})
    return result
