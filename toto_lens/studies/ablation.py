"""`studies.ablate`: silence chosen attention heads and measure the per-frame loss on clips of the cache.

Does the later frames' advantage (first-frame loss / later-frames loss) shrink when the heads are
ablated (zeroed, or replaced by their mean output)? Beside it, as many random other heads, several
draws: the chosen heads' Δ later-frames loss is read against theirs.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from toto_lens.progress import Progress
from toto_lens.studies.base import (
    Study,
    StudyError,
    Summary,
    cache_args,
    cache_checkpoint,
    cache_with_tokens,
    command_line,
    fmt,
    provenance,
)


def ablate(
    ckpt: str | os.PathLike | None = None,
    *,
    cache: Any = None,
    dataset: str | None = None,
    heads: str = "top:frame_induction:2",
    mode: str = "zero",
    clips: int = 32,
    random_draws: int = 5,
    seed: int = 0,
    progress: Progress | None = None,
    trust_code: bool = False,
) -> Study:
    """Per-frame loss on the first `clips` complete video clips of the cache, intact, with `heads` ablated
    (`top:<score>:<k>` or `1.2,2.0`, layer.head as in the induction result) and with as many random heads
    ablated (`random_draws` draws, `seed`). mode: zero or mean. Options as `toto-lens ablate`."""
    from toto_lens.data.layout import layout_of
    from toto_lens.figures.ablation import ablation_figure
    from toto_lens.run.ablation import MODES, run_ablation

    if clips <= 0:
        raise StudyError(f"clips={clips}: head ablation needs at least one clip")
    if random_draws < 0:
        raise StudyError(f"random_draws={random_draws}: give 0 or more draws of random heads")
    if mode not in MODES:
        raise StudyError(f"mode={mode!r}: choose zero or mean")
    ds = cache_with_tokens(ckpt, cache, dataset)
    if "kind" in ds.variables:
        videos = np.flatnonzero(np.asarray(ds["kind"].values) == 0)
        if videos.size == 0:
            raise StudyError(
                "the cache holds no video clips; the later frames' advantage is a video question"
            )
        ds = ds.isel(clip=videos)
    tokens = ds["tokens"].isel(clip=slice(0, clips))
    ck, changed = cache_checkpoint(ds, trust_code=trust_code, what="head ablation")
    result = run_ablation(
        ck, tokens.values, ds["pos_frame"].values, heads, mode=mode, random_draws=random_draws,
        seed=seed, layout=layout_of(ds), progress=progress,
    )  # fmt: skip
    result.attrs.update(
        provenance("ablation", ds, heads=heads, mode=mode, clips=int(tokens.sizes["clip"]),
                   random_draws=random_draws, seed=seed)
    )  # fmt: skip
    result.attrs["command"] = command_line(
        "ablate", *cache_args(ckpt, cache, ds, dataset), "--heads", heads, "--mode", mode,
        "--clips", clips, "--draws", random_draws, "--seed", seed or None, "--trust-code", trust_code,
    )  # fmt: skip
    return Study("ablation", result, [ablation_figure(result)], ablation_summary(result, changed))


def ablation_summary(result: Any, notes: list[str] = ()) -> Summary:
    """Per condition: first-frame and later-frames loss, the advantage, Δ later-frames loss."""
    r = result
    rand_later = np.asarray(r["later_random"].values, np.float64)
    rand_delta = np.asarray(r["delta_later_random"].values, np.float64)
    rand_adv = np.asarray(r["advantage_random"].values, np.float64)
    first_random = np.asarray(r["loss_random"].values, np.float64)[:, 0] if r.sizes["draw"] else np.zeros(0)

    def spread(x: np.ndarray) -> tuple[float | None, float | None]:
        return (float(x.mean()), float(x.std())) if x.size else (None, None)

    data = {
        "heads": r.attrs.get("heads", ""),
        "mode": r.attrs.get("ablation"),
        "clips": r.attrs.get("clips"),
        "intact": {"first": float(r["loss_intact"][0]), "later": float(r["later_intact"]),
                   "advantage": float(r["advantage_intact"])},
        "ablated": {"first": float(r["loss_ablated"][0]), "later": float(r["later_ablated"]),
                    "advantage": float(r["advantage_ablated"]), "delta_later": float(r["delta_later_ablated"])},
        "random": {"draws": int(r.sizes["draw"]), "delta_later": rand_delta.tolist(),
                   "delta_later_mean": spread(rand_delta)[0], "delta_later_std": spread(rand_delta)[1],
                   "advantage_mean": spread(rand_adv)[0]},
    }  # fmt: skip
    rows = [
        ["intact", fmt(data["intact"]["first"]), fmt(data["intact"]["later"]),
         fmt(data["intact"]["advantage"], ".2f"), "0"],
        [f"ablated {data['heads'] or '(none)'}", fmt(data["ablated"]["first"]), fmt(data["ablated"]["later"]),
         fmt(data["ablated"]["advantage"], ".2f"), fmt(data["ablated"]["delta_later"], "+.3f")],
    ]  # fmt: skip
    if rand_delta.size:
        m, s = spread(rand_delta)
        rows.append([
            f"random heads ({rand_delta.size} draws)", fmt(spread(first_random)[0]),
            f"{fmt(spread(rand_later)[0])} ± {fmt(spread(rand_later)[1])}",
            fmt(spread(rand_adv)[0], ".2f"), f"{fmt(m, '+.3f')} ± {fmt(s)}",
        ])  # fmt: skip
    ranked = r.attrs.get("ranked_by")
    notes = [
        *notes,
        f"{data['clips']} clips, {data['mode']} ablation"
        + (f"; heads ranked by {ranked}" if ranked else "")
        + "; advantage = first-frame loss / later-frames loss",
    ]
    return Summary(
        title="head ablation: the later frames' advantage with heads silenced",
        columns=["condition", "loss frame 0", "loss frames ≥ 1", "advantage", "Δ loss frames ≥ 1"],
        rows=rows,
        data=data,
        notes=notes,
        caption="heads as layer.head (layer i is block i − 1's attention); random: as many other heads, mean ± std",
    )
