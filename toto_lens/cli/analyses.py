"""Commands that run one analysis and write its figure: `toto-lens redundancy`, `toto-lens induction`.

Each writes the figure (`--out`, .html or .json) and the numbers behind it next to it
(`<out stem>.data.json`, the result Dataset as `xarray.Dataset.to_dict`, NaN as null), then prints the
key numbers as a table (or one JSON object with `--json`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from toto_lens.cli.app import CacheOpt, CkptOpt, DatasetOpt, JsonOpt, app, console

OutOpt = Annotated[Path, typer.Option("--out", help="Figure file: .html (or .json).")]


def _plain(value: Any) -> Any:
    """JSON-ready: numpy scalars to Python, NaN and infinities to null."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_data(result: Any, figure_path: Path) -> Path:
    """The result Dataset as JSON beside the figure: `<stem>.data.json`."""
    from toto_lens.io import atomic_file, to_json

    target = figure_path.with_name(f"{figure_path.stem}.data.json")
    with atomic_file(target) as tmp:
        tmp.write_text(to_json(_plain(result.to_dict(data="list")), "analysis result"), encoding="utf-8")
    return target


def _fmt(x: float, spec: str = ".3f") -> str:
    return "—" if x is None or not math.isfinite(x) else format(x, spec)


@app.command()
def redundancy(
    ckpt: CkptOpt,
    out: OutOpt,
    dataset: DatasetOpt = None,
    cache: CacheOpt = None,
    kind: Annotated[
        str | None, typer.Option("--kind", help="Only video or images clips; default: every clip.")
    ] = None,
    fit: Annotated[
        str, typer.Option("--fit", help="Baselines fitted on half the clips (half) or in-sample (all).")
    ] = "half",
    as_json: JsonOpt = False,
) -> None:
    """Loss per frame and per position (appendix A.3, Fig. 10) beside copy, unigram and bigram baselines."""
    from toto_lens.analysis.redundancy import PREDICTORS
    from toto_lens.analysis.redundancy import redundancy as run_redundancy
    from toto_lens.figures import write_figure
    from toto_lens.figures.redundancy import redundancy_figure
    from toto_lens.store import open_cache

    ds = open_cache(ckpt, dataset=dataset, path=cache)
    result = run_redundancy(ds, kind=kind, fit=fit)
    path = write_figure(redundancy_figure(result), out)
    data = write_data(result, path)
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
    summary = {
        "out": str(path),
        "data": str(data),
        "clips": a["clips"],
        "first_frame_loss": a["first_frame_loss"],
        "later_frames_loss": a["later_frames_loss"],
        "first_to_later_ratio": a["first_to_later_ratio"],
        "in_context_score": a["in_context_score"],
        "copy_accuracy_later_frames": float(copy_later.mean()) if copy_later.size else float("nan"),
        "baseline_fit": a["baseline_fit"],
        "predictors": rows,
    }
    if as_json:
        print(json.dumps(_plain(summary)))
        return
    console.print(
        f"{a['clips']} clips: first frame {_fmt(a['first_frame_loss'])} nats, later frames "
        f"{_fmt(a['later_frames_loss'])} nats, ratio first/later {_fmt(a['first_to_later_ratio'], '.2f')}; "
        f"copy accuracy on later frames {_fmt(summary['copy_accuracy_later_frames'], '.1%')}"
    )
    table = Table(
        title="mean loss per token (nats)",
        caption=f"{a['eval_clips']} evaluation clips; baseline fit: {a['baseline_fit']}",
        box=box.SIMPLE_HEAD,
    )
    for col in ("predictor", "frame 0", "frames ≥ 1"):
        table.add_column(col, justify="left" if col == "predictor" else "right")
    for r in rows:
        table.add_row(r["predictor"], _fmt(r["first_frame"]), _fmt(r["later_frames"]))
    console.print(table)
    console.print(f"wrote {path} and {data}")


def _cache_clips(name: str, dataset: str | None) -> tuple[Any, Any, str | None]:
    """(tokens of the cache's clips, layout, None) or (None, None, why there are none)."""
    from toto_lens.analysis.redundancy import complete_clips
    from toto_lens.data.layout import layout_of
    from toto_lens.errors import TotoLensError
    from toto_lens.store import list_stores, open_cache

    # without --dataset, any of the checkpoint's stores will do: the first that holds videos
    names = [dataset] if dataset else (list_stores(name) or [None])
    why = None
    for candidate in names:
        try:
            ds = complete_clips(open_cache(name, dataset=candidate))
        except TotoLensError as e:
            why = str(e)
            continue
        videos = ds["kind"].values == 0
        if videos.any():  # previous-frame heads are a video question
            return ds["tokens"].isel(clip=videos), layout_of(ds), None
        why = f"the cache {candidate} holds no video clips"
    return None, None, why


@app.command()
def induction(
    ckpt: Annotated[
        list[str],
        typer.Option("--ckpt", help="Checkpoint name or folder; repeat to follow heads across training."),
    ],
    out: OutOpt,
    n: Annotated[int, typer.Option("--n", min=2, help="Length of the repeated random sequence.")] = 64,
    batch: Annotated[
        int, typer.Option("--batch", min=1, help="Random sequences (and cache clips) to average.")
    ] = 8,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random tokens.")] = 0,
    dataset: DatasetOpt = None,
    threshold: Annotated[float, typer.Option("--threshold", help="Score that marks a head.")] = 0.4,
    as_json: JsonOpt = False,
) -> None:
    """Induction (prefix matching), repeated-clip, previous-frame and previous-row heads per layer and head."""
    import numpy as np

    from toto_lens.analysis.induction import SCORES, stack_checkpoints
    from toto_lens.checkpoints import load_checkpoint
    from toto_lens.figures import write_figure
    from toto_lens.figures.induction import induction_emergence_figure, induction_heatmap_figure
    from toto_lens.run.induction import induction_scores

    # The video scores need real clips; checkpoints of one run share a tokenizer, so the first cache
    # found serves every checkpoint (the clips are inputs, the same for all of them).
    loaded = [load_checkpoint(name) for name in ckpt]
    clips = layout = None
    reasons = []
    for one in loaded:
        clips, layout, why = _cache_clips(one.name, dataset)
        if clips is not None:
            if len(loaded) > 1 and not as_json:
                console.print(f"clips for the video scores: the cache of {one.name}, for every checkpoint")
            break
        reasons.append(f"{one.name}: {why}")
    if clips is None and not as_json:
        console.print(
            f"note: no cache ({'; '.join(reasons)}); repeated-clip, frame-induction, previous-frame and "
            "previous-row scores skipped"
        )
    results = [
        induction_scores(one, n=n, batch=batch, seed=seed, clips_tokens=clips, layout=layout)
        for one in loaded
    ]
    scores = stack_checkpoints(results) if len(results) > 1 else results[0]
    figures = [induction_heatmap_figure(scores, threshold=threshold)]
    if len(results) > 1:
        figures.append(induction_emergence_figure(scores, threshold=threshold))
    path = write_figure(figures, out)
    data = write_data(scores, path)

    rows = []
    for r in results:
        row: dict[str, Any] = {"checkpoint": r.attrs.get("checkpoint"), "step": r.attrs.get("step")}
        for key in SCORES:
            values = r[key].values  # (layer, head)
            if np.isfinite(values).any():
                layer, head = divmod(int(np.nanargmax(values)), values.shape[1])
                row[key] = {
                    "best": float(np.nanmax(values)),
                    "layer": int(r["layer"].values[layer]),
                    "head": head,
                    "above": int((values > threshold).sum()),
                }
        row["first_copy_loss"] = float(r["first_copy_loss"])
        row["second_copy_loss"] = float(r["second_copy_loss"])
        rows.append(row)
    if as_json:
        print(json.dumps(_plain({"out": str(path), "data": str(data), "threshold": threshold, "rows": rows})))
        return
    table = Table(
        title=f"strongest head per score: L<layer>.H<head> score (number of heads > {threshold:g})",
        box=box.SIMPLE_HEAD,
    )
    shown = [k for k in SCORES if any(k in r for r in rows)]
    for col in ("checkpoint", "step", *shown, "loss 1st copy", "loss 2nd copy"):
        table.add_column(
            col.replace("_", " "), justify="left" if col == "checkpoint" else "right", no_wrap=True
        )
    for r in rows:
        cells = [
            f"L{r[k]['layer']}.H{r[k]['head']} {r[k]['best']:.2f} ({r[k]['above']})" if k in r else "—"
            for k in shown
        ]
        step = "—" if r["step"] is None else f"{r['step']:g}"
        table.add_row(
            str(r["checkpoint"]), step, *cells, _fmt(r["first_copy_loss"]), _fmt(r["second_copy_loss"])
        )
    console.print(table)
    console.print(f"wrote {path} and {data}")
