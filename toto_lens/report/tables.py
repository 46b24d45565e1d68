"""Sections that are tables read from other sections' numbers (Tables 16-19 analogues): no work of their own."""

from __future__ import annotations

from typing import Any

from toto_lens.report.context import Context, Output


def _best(ctx: Context, task: str | None, probe: str) -> list[dict[str, Any]]:
    peaks = ctx.numbers["fig9"]["peaks"]
    return [p for p in peaks if p["probe"] == probe and (task is None or p["task"] == task)]


def table16(ctx: Context) -> Output:
    task = ctx.family["probing"]["image_task"]
    rows = _best(ctx, task, "linear")
    body = [[p["size"], str(p["best_layer"]), f"{p['depth']:.2f}", f"{p['val']:.3f}", f"{p['untrained_val']:.3f}",
             f"{p['chance']:.3f}"] for p in rows]  # fmt: skip
    why = ("no iGPT here to compare with; our sizes' linear-probe score on image sequences at their best layer, "
           "against the untrained copy and chance")  # fmt: skip
    t = {"title": f"Linear probing of {task} (image-digits), best layer per size",
         "columns": ["size", "best layer", "depth", "top-1", "untrained", "chance"], "rows": body}  # fmt: skip
    return Output({"why": why, "rows": rows}, [], [t])


def table17(ctx: Context) -> Output:
    from toto_lens.config import ModelConfig, paper_params

    paper = {"base": "toto-base", "large": "toto-large", "1b": "toto-1b"}
    rows = []
    for m in ctx.models:
        t = m.trained
        ref = ModelConfig.from_name(paper[m.label]) if m.label in paper else None
        rows.append([m.label, t["model"], str(t["width"]), str(t["heads"]), str(t["layers"]), f"{t['params']:,}",
                     f"{ref.dim}/{ref.n_heads}/{ref.n_layers}, {paper_params(paper[m.label]):,}" if ref else "—"])  # fmt: skip
    u = ctx.family["mup"]
    why = (f"our three sizes stand for the paper's; the μP family: {u['model']} at widths "
           f"{', '.join(map(str, u['widths']))}, depth fixed, as a1 … a6 in Fig. 11")  # fmt: skip
    t = {"title": "The family (Table 17 analogue)", "rows": rows,
         "columns": ["size", "variant", "width", "heads", "layers", "parameters", "paper: width/heads/layers, params"]}  # fmt: skip
    return Output({"why": why, "rows": rows}, [], [t])


def table18(ctx: Context) -> Output:
    task = next(iter(ctx.family["probing"]["tasks"].split(",")))
    lin, att = _best(ctx, task, "linear"), _best(ctx, task, "attention")
    sizes = [
        {"size": a["size"], "linear": li["val"], "attention": a["val"], "linear_clips": li.get("n_train"),
         "attention_clips": a.get("n_train")}
        for li, a in zip(lin, att, strict=True)
    ]  # fmt: skip
    t = {"title": f"Probe heads on {task}: best-layer score per size (training clips)",
         "columns": ["size", "linear", "attention"],
         "rows": [[s["size"], f"{s['linear']:.3f} ({s['linear_clips']})", f"{s['attention']:.3f} ({s['attention_clips']})"]
                  for s in sizes]}  # fmt: skip
    return Output({"task": task, "sizes": sizes}, [], [t])


def table19(ctx: Context) -> Output:
    rows = ctx.numbers["fig15"]["sizes"]
    why = ("FVD needs I3D weights that cannot be downloaded here; the substitute is the Fréchet distance of "
           "the model's own mid-layer frame features, generated against real, beside real against real")  # fmt: skip
    body = [[r["size"], f"{r['video']['frechet']:.3f}", f"{r['video']['frechet_truth']:.3f}",
             f"{r['images']['frechet']:.3f}"] for r in rows]  # fmt: skip
    t = {"title": "Fréchet distance of generated clips (Table 19 analogue, not FVD)", "rows": body,
         "columns": ["size", "from [1] vs real videos", "real vs real", "from [3] vs real images"]}  # fmt: skip
    return Output({"why": why, "sizes": rows}, [], [t])
