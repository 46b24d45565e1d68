"""`studies.induction`: induction, previous-frame and previous-row heads of one or more checkpoints (A.3).

The random-token scores need only the weights; the video scores need real clips, which come from a
cache of the checkpoint (the first that holds videos). Checkpoints of one run share a tokenizer, so
the first cache found serves every checkpoint: the clips are inputs, the same for all of them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from toto_lens.progress import Progress, report
from toto_lens.studies.base import Study, Summary, command_line, fmt, provenance


def video_clips(ckpt_name: str, dataset: str | None = None) -> tuple[Any, Any, str]:
    """(the video clips' tokens of a cache of the checkpoint or None, their layout, where they came from
    or why there are none)."""
    from toto_lens.analysis.token_cache import complete_clips
    from toto_lens.data.layout import layout_of
    from toto_lens.errors import TotoLensError
    from toto_lens.store import list_stores, open_cache

    candidates = [dataset] if dataset else (list_stores(ckpt_name) or [None])
    why = ""
    for candidate in candidates:
        try:
            ds = complete_clips(open_cache(ckpt_name, dataset=candidate))
        except TotoLensError as e:
            why = str(e)
            continue
        videos = ds["kind"].values == 0
        if videos.any():  # previous-frame heads are a video question
            return ds["tokens"].isel(clip=videos), layout_of(ds), f"the cache of {ckpt_name}"
        why = f"the cache {candidate} holds no video clips"
    return None, None, why


def induction(
    ckpts: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    n: int | None = None,
    batch: int = 8,
    seed: int = 0,
    dataset: str | None = None,
    threshold: float = 0.4,
    progress: Progress | None = None,
    trust_code: bool = False,
) -> Study:
    """Head scores per (layer, head) of each checkpoint; several checkpoints (of one run, in training
    order) are stacked along `checkpoint` and drawn as emergence curves. Options as `toto-lens induction`;
    trust_code: load checkpoints whose tokenizer names code to import (`--trust-code`).

    n = None (the default) picks the length of the repeated random sequence away from whole frames:
    n = 1.5 frames (96 for 8 × 8 tokens a frame; `analysis.induction.default_repeat_length`), recorded
    in the result's attributes (`n`, `tokens_per_frame`). An n within a token of a multiple of the tokens
    a frame is kept when asked for, with a note: at that length the prefix-matching target sits about a
    whole number of frames back, so the raw score also counts heads that read a fixed offset; the summary
    ranks heads by the score minus its no-repetition control."""
    from toto_lens.analysis.induction import stack_checkpoints
    from toto_lens.checkpoints import load_checkpoint
    from toto_lens.figures.induction import induction_emergence_figure, induction_heatmap_figure
    from toto_lens.run.induction import induction_scores

    items = [ckpts] if isinstance(ckpts, str | os.PathLike) else list(ckpts)
    loaded = [load_checkpoint(item, trust_code=trust_code) for item in items]
    clips, layout, reasons, notes = None, None, [], []
    for one in loaded:
        clips, layout, why = video_clips(one.name, dataset)
        if clips is not None:
            notes.append(
                f"clips for the video scores: {why}" + (", for every checkpoint" if len(loaded) > 1 else "")
            )
            break
        reasons.append(f"{one.name}: {why}")
    if clips is None:
        notes.append(
            f"note: no cache ({'; '.join(reasons)}); repeated-clip, frame-induction, previous-frame and "
            "previous-row scores skipped"
        )
    results = []
    for i, one in enumerate(loaded):
        results.append(induction_scores(one, n=n, batch=batch, seed=seed, clips_tokens=clips, layout=layout))
        n = int(results[0].attrs["n"])  # the length chosen for the first serves every checkpoint
        report(progress, "induction", i + 1, len(loaded), "checkpoints")
    if results[0].attrs.get("n_confounded"):
        per_frame = results[0].attrs["tokens_per_frame"]
        notes.append(
            f"note: n = {n} is within a token of a whole number of frames ({per_frame} tokens a frame): "
            "the prefix-matching score is confounded with a fixed offset at that length (a head that reads "
            "about k frames back scores too); read the excess over the no-repeat control"
        )
    scores = stack_checkpoints(results) if len(results) > 1 else results[0]
    scores.attrs.update(provenance("induction", None, n=n, batch=batch, seed=seed, dataset=dataset))
    scores.attrs["checkpoints"] = [one.name for one in loaded]
    scores.attrs["command"] = command_line(
        "induction", "--ckpt", [str(c) for c in items], "--n", n, "--batch", batch, "--seed", seed,
        "--dataset", dataset, "--threshold", threshold, "--trust-code", trust_code,
    )  # fmt: skip
    figures = [induction_heatmap_figure(scores, threshold=threshold)]
    if len(results) > 1:
        figures.append(induction_emergence_figure(scores, threshold=threshold))
    return Study("induction", scores, figures, induction_summary(results, threshold, notes))


_COLUMNS = {"prefix_matching_excess": "prefix matching − control"}


def induction_summary(results: list[Any], threshold: float, notes: list[str]) -> Summary:
    """Per checkpoint, the strongest head of each score and how many heads pass the threshold.

    Prefix matching is ranked by its controlled score (raw minus the no-repeat control at the same
    targets); its row entry also gives that head's raw and control scores."""
    from toto_lens.analysis.induction import CONTROLLED, SCORES

    rows = []
    for r in results:
        row: dict[str, Any] = {"checkpoint": r.attrs.get("checkpoint"), "step": r.attrs.get("step")}
        row["n"] = int(r.attrs["n"]) if "n" in r.attrs else None
        for key in (*SCORES, *CONTROLLED):
            values = r[key].values  # (layer, head)
            if np.isfinite(values).any():
                layer, head = divmod(int(np.nanargmax(values)), values.shape[1])
                row[key] = {"best": float(np.nanmax(values)), "layer": int(r["layer"].values[layer]),
                            "head": head, "above": int((values > threshold).sum())}  # fmt: skip
        if "prefix_matching_excess" in row:  # the best controlled head's raw and control scores
            at = {
                "layer": row["prefix_matching_excess"]["layer"],
                "head": row["prefix_matching_excess"]["head"],
            }
            for word, key in (("raw", "prefix_matching"), ("control", "prefix_matching_control")):
                row["prefix_matching_excess"][word] = float(r[key].sel(at))
        row["first_copy_loss"] = float(r["first_copy_loss"])
        row["second_copy_loss"] = float(r["second_copy_loss"])
        rows.append(row)
    # Prefix matching is shown by its controlled score: the raw one alone counts fixed-offset heads.
    controlled = any("prefix_matching_excess" in r for r in rows)
    swap = {"prefix_matching": "prefix_matching_excess"} if controlled else {}
    shown = [swap.get(k, k) for k in SCORES if any(k in r for r in rows)]
    table = []
    for r in rows:
        cells = []
        for k in shown:
            if k not in r:
                cells.append("—")
                continue
            best = r[k]
            cell = f"L{best['layer']}.H{best['head']} {best['best']:.2f}"
            if k == "prefix_matching_excess":
                cell += f" = {best['raw']:.2f}−{best['control']:.2f}"
            cells.append(f"{cell} ({best['above']})")
        step = "—" if r["step"] is None else f"{r['step']:g}"
        table.append(
            [str(r["checkpoint"]), step, *cells, fmt(r["first_copy_loss"]), fmt(r["second_copy_loss"])]
        )
    return Summary(
        title=f"strongest head per score: L<layer>.H<head> score (number of heads > {threshold:g})",
        columns=[
            "checkpoint",
            "step",
            *(_COLUMNS.get(k, k.replace("_", " ")) for k in shown),
            "loss 1st copy",
            "loss 2nd copy",
        ],
        rows=table,
        data={"threshold": threshold, "rows": rows},
        notes=notes,
        caption=_caption(rows) if controlled else "",
    )


def _caption(rows: list[dict[str, Any]]) -> str:
    lengths = sorted({r["n"] for r in rows if r.get("n") is not None})
    at = f" at n = {', '.join(map(str, lengths))}" if lengths else ""
    return (
        f"prefix matching − control: random tokens r played twice{at}, the head ranked by its excess over "
        "the same targets when r is followed by fresh tokens r′ (nothing repeated): excess = raw − control"
    )
