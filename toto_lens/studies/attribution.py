"""`studies.attribute`: where a checkpoint's prediction of a token finds its evidence among earlier tokens.

Integrated gradients on the token embedding (captum), for log p(token | earlier tokens) of one chosen
token or of random tokens of frames ≥ 1: how much of the attribution sits on the same frame, the previous
frame (and the same place in it), older frames and the start token, each beside the share uniform mass
would give, and the same place beside the previous frame's other places. The completeness gap says how
well the attributions add up to F(input) − F(baseline).
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


def attribute(
    ckpt: str | os.PathLike | None = None,
    *,
    cache: Any = None,
    dataset: str | None = None,
    clip: int = 0,
    frame: int | None = None,
    row: int | None = None,
    col: int | None = None,
    targets: int = 16,
    n_steps: int = 32,
    seed: int = 0,
    progress: Progress | None = None,
    trust_code: bool = False,
) -> Study:
    """Attribution of log p(token | earlier tokens) to every earlier token: of the token at (frame, row,
    col) of the cache's complete clip `clip` when all three are given (frame 0 too: its evidence is the
    start token and its own frame), else of `targets` random tokens of frames ≥ 1 (`seed`) spread over the
    first `targets` clips. n_steps: the integral's steps. Options as `toto-lens attribute`."""
    from toto_lens.data.layout import layout_of
    from toto_lens.figures.attribution import attribution_figure
    from toto_lens.run.attribution import run_attribution

    given = [v is not None for v in (frame, row, col)]
    if any(given) and not all(given):
        raise StudyError("give the target's frame, row and col together (or none, for random targets)")
    if not all(given) and targets <= 0:
        raise StudyError(f"targets={targets}: attribution needs at least one target")
    if n_steps < 2:
        raise StudyError(f"n_steps={n_steps}: integrated gradients needs at least 2 steps")
    ds = cache_with_tokens(ckpt, cache, dataset)
    layout = layout_of(ds)
    n_clips = int(ds.sizes["clip"])
    if n_clips == 0:
        raise StudyError("the cache holds no complete clip")
    if all(given):
        clips, positions = _chosen(layout, n_clips, clip, frame, row, col)
    else:
        if layout.frames < 2:
            raise StudyError("random targets come from frames ≥ 1, and the clips have one frame")
        clips, positions = _random(layout, min(targets, n_clips), targets, seed)
    tokens = ds["tokens"].values[clips]
    ck, changed = cache_checkpoint(ds, trust_code=trust_code, what="attribution")
    result = run_attribution(
        ck, tokens, positions, ds["pos_frame"].values, ds["row"].values, ds["col"].values,
        n_steps=n_steps, progress=progress,
    )  # fmt: skip
    result.coords["target_clip"] = ("target", np.asarray(ds["clip"].values)[clips])
    chosen = all(given)
    result.attrs.update(provenance(
        "attribution", ds, clip=clip if chosen else None, frame=frame, row=row, col=col,
        targets=None if chosen else targets, n_steps=n_steps, seed=None if chosen else seed,
    ))  # fmt: skip
    result.attrs["command"] = command_line(
        "attribute", *cache_args(ckpt, cache, ds, dataset), "--clip", clip if chosen else None,
        "--frame", frame, "--row", row, "--col", col, "--targets", None if chosen else targets,
        "--steps", n_steps, "--seed", None if chosen or not seed else seed, "--trust-code", trust_code,
    )  # fmt: skip
    return Study("attribution", result, [attribution_figure(result)], attribution_summary(result, changed))


def _chosen(layout: Any, n_clips: int, clip: int, frame: int, row: int, col: int) -> tuple[Any, Any]:
    if not 0 <= clip < n_clips:
        raise StudyError(f"clip={clip}: the cache has {n_clips} complete clips (0 … {n_clips - 1})")
    try:
        position = layout.position(frame, row, col)
    except IndexError:
        raise StudyError(
            f"(frame, row, col) = ({frame}, {row}, {col}) lies outside the clips' "
            f"{layout.frames} frames of {layout.rows}×{layout.cols} tokens (frame 0 … {layout.frames - 1}, "
            f"row 0 … {layout.rows - 1}, col 0 … {layout.cols - 1})"
        ) from None
    return np.array([clip]), np.array([position])


def _random(layout: Any, n_clips: int, targets: int, seed: int) -> tuple[Any, Any]:
    """`targets` tokens of frames ≥ 1, cycling over the first n_clips clips, places drawn with `seed`."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(1, layout.frames, size=targets)
    rows, cols = rng.integers(0, layout.rows, size=targets), rng.integers(0, layout.cols, size=targets)
    positions = [layout.position(int(f), int(r), int(c)) for f, r, c in zip(frames, rows, cols, strict=True)]
    return np.arange(targets) % n_clips, np.array(positions)


def attribution_summary(result: Any, notes: list[str] = ()) -> Summary:
    """Per bucket (the same frame, the previous one and its same place, older frames, the start token):
    the mean |share| and signed share of the attribution beside the uniform control; the completeness gap."""
    from toto_lens.analysis.attribution import bucket_means

    buckets = bucket_means(result)
    gap, rel = result["gap"].values, result["gap_relative"].values
    a = result.attrs
    data = {
        "targets": int(result.sizes["target"]),
        "n_steps": a.get("n_steps"),
        "baseline": a.get("baseline"),
        "buckets": buckets,
        "gap_max": float(gap.max()),
        "gap_mean": float(gap.mean()),
        "gap_relative_max": float(np.nanmax(rel)) if np.isfinite(rel).any() else None,
        "gap_relative_mean": float(np.nanmean(rel)) if np.isfinite(rel).any() else None,
        "f_input_mean": float(result["f_input"].mean()),
        "f_baseline_mean": float(result["f_baseline"].mean()),
        "steps_max": int(result["steps"].max()) if "steps" in result else a.get("n_steps"),
    }
    head = [
        f"{data['targets']} targets, {data['n_steps']} steps (up to {data['steps_max']} where the gap "
        f"was over {fmt(a.get('tolerance'), '.0%')}), baseline: {data['baseline']}; "
        f"log p(target) {fmt(data['f_input_mean'])} on the clip, {fmt(data['f_baseline_mean'])} on the baseline",
        f"completeness gap |Σ attribution − (F(x) − F(x'))|: max {fmt(data['gap_max'], '.2e')}, "
        f"mean {fmt(data['gap_mean'], '.2e')}; relative to |F(x) − F(x')|: max "
        f"{fmt(data['gap_relative_max'], '.2%')}, mean {fmt(data['gap_relative_mean'], '.2%')}",
    ]
    rows = [
        [name, fmt(b["abs"], ".1%"), fmt(b["signed"], "+.1%"), fmt(b["uniform"], ".1%"),
         fmt(b["abs"] / b["uniform"], ".2f") if b["uniform"] else "—"]
        for name, b in buckets.items()
    ]  # fmt: skip
    return Summary(
        title="integrated gradients: share of the attribution over earlier tokens",
        columns=["earlier tokens", "|attr| share", "signed share", "uniform control", "ratio"],
        rows=rows,
        data=data,
        notes=[*notes, *head],
        caption="shares of Σ|attribution| over the tokens before the target, averaged over targets; the "
        "same place and another place are per token (another place: the mean of the previous frame's others)",
    )
