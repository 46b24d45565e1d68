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
    from toto_lens.analysis.redundancy import complete_clips
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
    n: int = 64,
    batch: int = 8,
    seed: int = 0,
    dataset: str | None = None,
    threshold: float = 0.4,
    progress: Progress | None = None,
    trust_code: bool = False,
) -> Study:
    """Head scores per (layer, head) of each checkpoint; several checkpoints (of one run, in training
    order) are stacked along `checkpoint` and drawn as emergence curves. Options as `toto-lens induction`;
    trust_code: load checkpoints whose tokenizer names code to import (`--trust-code`)."""
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
        report(progress, "induction", i + 1, len(loaded), "checkpoints")
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


def induction_summary(results: list[Any], threshold: float, notes: list[str]) -> Summary:
    """Per checkpoint, the strongest head of each score and how many heads pass the threshold."""
    from toto_lens.analysis.induction import SCORES

    rows = []
    for r in results:
        row: dict[str, Any] = {"checkpoint": r.attrs.get("checkpoint"), "step": r.attrs.get("step")}
        for key in SCORES:
            values = r[key].values  # (layer, head)
            if np.isfinite(values).any():
                layer, head = divmod(int(np.nanargmax(values)), values.shape[1])
                row[key] = {"best": float(np.nanmax(values)), "layer": int(r["layer"].values[layer]),
                            "head": head, "above": int((values > threshold).sum())}  # fmt: skip
        row["first_copy_loss"] = float(r["first_copy_loss"])
        row["second_copy_loss"] = float(r["second_copy_loss"])
        rows.append(row)
    shown = [k for k in SCORES if any(k in r for r in rows)]
    table = []
    for r in rows:
        cells = [
            f"L{r[k]['layer']}.H{r[k]['head']} {r[k]['best']:.2f} ({r[k]['above']})" if k in r else "—"
            for k in shown
        ]
        step = "—" if r["step"] is None else f"{r['step']:g}"
        table.append(
            [str(r["checkpoint"]), step, *cells, fmt(r["first_copy_loss"]), fmt(r["second_copy_loss"])]
        )
    return Summary(
        title=f"strongest head per score: L<layer>.H<head> score (number of heads > {threshold:g})",
        columns=[
            "checkpoint",
            "step",
            *(k.replace("_", " ") for k in shown),
            "loss 1st copy",
            "loss 2nd copy",
        ],
        rows=table,
        data={"threshold": threshold, "rows": rows},
        notes=notes,
    )
