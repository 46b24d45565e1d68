"""`studies.redundancy`: why later frames cost so little loss (appendix A.3, Fig. 10), from a cache."""

from __future__ import annotations

import os
from typing import Any

from toto_lens.progress import Progress
from toto_lens.studies.base import Study, Summary, cache_args, command_line, fmt, open_study_cache, provenance


def redundancy(
    ckpt: str | os.PathLike | None = None,
    *,
    cache: Any = None,
    dataset: str | None = None,
    kind: str | None = None,
    fit: str = "half",
    progress: Progress | None = None,
) -> Study:
    """Loss per frame and per position beside copy-previous-frame, unigram and bigram predictors.

    kind: only "video" or "images" clips (None: every clip); fit: baselines fitted on half the clips
    and scored on the other half ("half") or in-sample ("all"). Options as `toto-lens redundancy`.
    """
    from toto_lens.analysis.redundancy import redundancy as loss_redundancy
    from toto_lens.figures.redundancy import redundancy_figure
    from toto_lens.progress import report

    ds = open_study_cache(ckpt, cache, dataset)
    report(progress, "redundancy", 0, 1, "caches")
    result = loss_redundancy(ds, kind=kind, fit=fit)
    report(progress, "redundancy", 1, 1, "caches")
    result.attrs.update(provenance("redundancy", ds, kind=kind, fit=fit))
    result.attrs["command"] = command_line(
        "redundancy",
        *cache_args(ckpt, cache, ds, dataset),
        "--kind",
        kind,
        "--fit",
        None if fit == "half" else fit,
    )
    return Study("redundancy", result, [redundancy_figure(result)], redundancy_summary(result))


def redundancy_summary(result: Any) -> Summary:
    """First against later frames, and each predictor's loss on both."""
    from toto_lens.analysis.predictors import PREDICTORS

    a = result.attrs
    frame_pred = result["frame_predictor_loss"]
    rows = [
        {
            "predictor": name,
            "first_frame": float(frame_pred.sel(predictor=name, frame=0)),
            "later_frames": float(a[f"later_frames_{name}"]),
        }
        for name in PREDICTORS
    ]
    copy_later = result["frame_copy_accuracy"].values[1:]
    copy_accuracy = float(copy_later.mean()) if copy_later.size else float("nan")
    keys = ("clips", "first_frame_loss", "later_frames_loss", "first_to_later_ratio", "in_context_score")
    data = {k: a[k] for k in keys}
    data.update(copy_accuracy_later_frames=copy_accuracy, baseline_fit=a["baseline_fit"], predictors=rows)
    headline = (
        f"{a['clips']} clips: first frame {fmt(a['first_frame_loss'])} nats, later frames "
        f"{fmt(a['later_frames_loss'])} nats, ratio first/later {fmt(a['first_to_later_ratio'], '.2f')}; "
        f"copy accuracy on later frames {fmt(copy_accuracy, '.1%')}"
    )
    return Summary(
        title="mean loss per token (nats)",
        columns=["predictor", "frame 0", "frames ≥ 1"],
        rows=[[r["predictor"], fmt(r["first_frame"]), fmt(r["later_frames"])] for r in rows],
        data=data,
        notes=[headline],
        caption=f"{a['eval_clips']} evaluation clips; baseline fit: {a['baseline_fit']}",
    )
