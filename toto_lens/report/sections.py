"""The report's sections: each calls `studies` on the family's models and keeps the numbers its verdict
reads (`claims.py`), its figures and its tables.

A section is `Section(id, title, claim, verdict, compute)`. `compute(ctx)` returns `Output(numbers,
figures, tables)`; numbers are JSON-ready and are all the verdict sees. Tables derived from other
sections' numbers (`needs`) cost nothing to recompute.
"""

from __future__ import annotations

from typing import Any

from toto_lens.report import claims
from toto_lens.report.context import Context, Model, Output, Section, table
from toto_lens.report.models import dataset_name
from toto_lens.report.tables import table16, table17, table18, table19

VIDEO, IMAGES = dataset_name("video"), dataset_name("images")


def _both(m: Model) -> list[str]:
    return [m.trained["checkpoint"], m.untrained["checkpoint"]]


def probing(ctx: Context) -> Output:
    from toto_lens import studies

    p = ctx.family["probing"]
    ckpts = [c for m in ctx.models for c in _both(m)]
    common = {"probes": p["probes"], "seeds": p["seeds"], "epochs": p["epochs"], "progress": ctx.progress}
    video = studies.probing(ckpts, dataset=VIDEO, tasks=p["tasks"], **common)
    images = studies.probing(ckpts, dataset=IMAGES, tasks=p["image_task"], **common)
    rows = video.summary.data["rows"] + images.summary.data["rows"]
    label = {c: (m.label, c == m.untrained["checkpoint"]) for m in ctx.models for c in _both(m)}
    peaks = []
    for r in rows:
        size, is_untrained = label[r["checkpoint"]]
        if is_untrained:
            continue
        twin = next(u for u in rows if u["checkpoint"] != r["checkpoint"] and label[u["checkpoint"]] ==
                    (size, True) and (u["task"], u["probe"]) == (r["task"], r["probe"]))  # fmt: skip
        peaks.append({"size": size, "task": r["task"], "probe": r["probe"], "metric": r["metric"],
                      "best_layer": r["best_layer"], "depth": r["depth"], "val": r["val_mean"],
                      "val_std": r["val_std"], "untrained_val": twin["val_mean"], "chance": r["chance"],
                      "n_train": r["n_train"]})  # fmt: skip
    return Output(
        {"peaks": peaks}, [video.figure, images.figure], [table(video.summary), table(images.summary)]
    )


def _ratio(ckpt: str, dataset: str) -> float:
    from toto_lens import studies

    return float(studies.redundancy(ckpt, dataset=dataset).summary.data["first_to_later_ratio"])


def redundancy(ctx: Context) -> Output:
    from toto_lens import studies

    sizes, figures = [], []
    for m in ctx.models:
        trained = studies.redundancy(m.trained["checkpoint"], dataset=VIDEO, progress=ctx.progress)
        d = trained.summary.data
        sizes.append({"size": m.label, "first": d["first_frame_loss"], "later": d["later_frames_loss"],
                      "ratio": d["first_to_later_ratio"], "copy_accuracy_later": d["copy_accuracy_later_frames"],
                      "untrained_ratio": _ratio(m.untrained["checkpoint"], VIDEO),
                      "images_ratio": _ratio(m.trained["checkpoint"], IMAGES)})  # fmt: skip
        if m is ctx.largest:
            figures.append(trained.figure)
            tables = [table(trained.summary)]
    from toto_lens.figures.report import grouped_bars

    bars = grouped_bars(
        [s["size"] for s in sizes],
        {"trained, videos": [s["ratio"] for s in sizes], "untrained, videos": [s["untrained_ratio"] for s in sizes],
         "trained, image sequences": [s["images_ratio"] for s in sizes]},
        title="First-frame loss / later-frames loss", yaxis="ratio", line=claims.CLEAR_RATIO,
    )  # fmt: skip
    return Output({"sizes": sizes}, [bars, *figures], tables)


def tracking(ctx: Context) -> Output:
    from toto_lens import studies
    from toto_lens.figures.report import grouped_bars

    t = ctx.family["tracking"]
    sizes, figures, tables = [], [], []
    for m in ctx.models:
        study = studies.track(m.trained["checkpoint"], dataset=VIDEO, clips=t["clips"], progress=ctx.progress)
        base = studies.track(m.untrained["checkpoint"], dataset=VIDEO, clips=t["clips"], pixels=False)
        d, u = study.summary.data, base.summary.data
        by = {r["predictor"]: r["JF"] for r in d["rows"]}
        layers = [r["JF"] for r in u["rows"] if r["predictor"].startswith("layer-")]
        sizes.append({"size": m.label, "best_layer": d["best_layer"], "best_jf": by[f"layer-{d['best_layer']}"],
                      "layers": m.trained["layers"], "depth": d["best_layer"] / m.trained["layers"],
                      "copy_first": by.get("copy-first"), "pixels": by.get("pixels"),
                      "oracle": by.get("token-oracle"), "untrained_jf": max(layers)})  # fmt: skip
        if m is ctx.largest:
            figures, tables = [study.figures[0], study.figures[-1]], [table(study.summary)]
    bars = grouped_bars(
        [s["size"] for s in sizes],
        {k: [s[key] for s in sizes] for k, key in (("best layer", "best_jf"), ("untrained", "untrained_jf"),
                                                     ("copy-first", "copy_first"), ("pixels", "pixels"))},
        title="J&F of label propagation per size", yaxis="J&F",
    )  # fmt: skip
    return Output({"sizes": sizes}, [bars, *figures], tables)


def lr_transfer(ctx: Context) -> Output:
    from toto_lens import studies

    u = ctx.family["mup"]
    study = studies.lr_sweep(
        u["widths"], u["lrs"], model=u["model"], steps=u["steps"], batch_size=u["batch_size"],
        control=u["control"], name=f"report-{ctx.family.name}", tokenizer=ctx.family.tokenizer,
        data=ctx.family.data, train_clips=u["train_clips"], val_clips=u["val_clips"], progress=ctx.progress,
    )  # fmt: skip
    r = study.result
    numbers = {}
    for param in r["parametrization"].values:
        one = r.sel(parametrization=param)
        key = "mup" if str(param) == "mup" else "standard"
        numbers[key] = {
            "best_lr": {str(int(w)): float(one["best_lr"].sel(width=w)) for w in one["width"].values},
            "spread_steps": int(one["spread_steps"]),
        }
    return Output(numbers, study.figures, [table(study.summary)])


def ngrams(ctx: Context) -> Output:
    from toto_lens import studies

    g = ctx.family["ngrams"]
    study = studies.ngrams(g["tokenizers"], n=(1, 2, 3), frames=g["frames"], progress=ctx.progress)
    return Output({"rows": study.summary.data["rows"]}, study.figures[1:3], [table(study.summary)])


def scaling(ctx: Context) -> Output:
    from toto_lens import studies

    study = studies.scaling([m.trained["checkpoint"] for m in ctx.models], progress=ctx.progress)
    r = study.result
    fit = {"a": float(r.attrs["a"]), "alpha": float(r.attrs["alpha"]), "r2": float(r.attrs["r2"]),
           "points": int(r.attrs["fit_points"])}  # fmt: skip
    final = [{"size": m.label, "params": int(r["params"].values[i]), "compute": float(r["final_compute"].values[i]),
              "val_loss": float(r["final_val_loss"].values[i])} for i, m in enumerate(ctx.models)]  # fmt: skip
    # Accuracy against compute too: each size's best probe score per (task, probe) from Fig. 9.
    compute = {f["size"]: f["compute"] for f in final}
    probes = [{**{k: p[k] for k in ("size", "task", "probe", "val", "untrained_val")}, "compute": compute[p["size"]]}
              for p in ctx.numbers["fig9"]["peaks"]]  # fmt: skip
    from toto_lens.figures.report import lines_figure

    curves = {f"{p['task']} · {p['probe']}": ([], []) for p in probes}
    for p in probes:
        curves[f"{p['task']} · {p['probe']}"][0].append(p["compute"])
        curves[f"{p['task']} · {p['probe']}"][1].append(p["val"])
    accuracy = lines_figure(curves, title="Best-layer probe score against training compute", xaxis="compute (FLOPs)",
                            yaxis="val score (best layer)", log_x=True)  # fmt: skip
    return Output(
        {"fit": fit, "final": final, "probes": probes}, [*study.figures, accuracy], [table(study.summary)]
    )


def generation(ctx: Context) -> Output:
    from toto_lens import studies
    from toto_lens.analysis.generation import frame_change

    g = ctx.family["generation"]
    numbers: dict[str, Any] = {"sizes": []}
    figures, tables = [], []
    for m in ctx.models:
        row = {"size": m.label}
        for start, dataset in (("video", VIDEO), ("images", IMAGES)):
            study = studies.generation(
                m.trained["checkpoint"], dataset=dataset, start=start, prompt_frames=0, clips=g["clips"],
                frames=g["frames"] or None, progress=ctx.progress,
            )  # fmt: skip
            r = study.result
            row[start] = {"generated": frame_change(r["generated_frames"].values),
                          "real": frame_change(r["true_frames"].values),
                          "frechet": float(r["frechet"].sel(continuation="generated")),
                          "frechet_truth": float(r["frechet"].sel(continuation="truth"))}  # fmt: skip
            if m is ctx.largest:
                figures.append(study.figure)
                tables.append(table(study.summary))
        numbers["sizes"].append(row)
    top = next(r for r in numbers["sizes"] if r["size"] == ctx.largest.label)
    numbers.update(video=top["video"], images=top["images"], size=ctx.largest.label)
    return Output(numbers, figures, tables)


def induction(ctx: Context) -> Output:
    from toto_lens import studies

    a = ctx.family["ablation"]
    sizes = []
    for m in ctx.models:
        study = studies.induction(_both(m)[::-1], batch=ctx.family["induction"]["batch"], dataset=VIDEO,
                                  progress=ctx.progress)  # fmt: skip
        rows = {r["checkpoint"]: r for r in study.summary.data["rows"]}
        trained, untrained = rows[m.trained["checkpoint"]], rows[m.untrained["checkpoint"]]
        best = trained.get("prefix_matching_excess", {})
        frame = trained.get("frame_induction", {})
        sizes.append({"size": m.label, "excess": best.get("best", float("nan")),
                      "head": f"L{best.get('layer')}.H{best.get('head')}",
                      "untrained_excess": untrained.get("prefix_matching_excess", {}).get("best", float("nan")),
                      "frame_induction": frame.get("best", float("nan")),
                      "frame_head": f"L{frame.get('layer')}.H{frame.get('head')}",
                      "untrained_frame_induction": untrained.get("frame_induction", {}).get("best", float("nan"))})  # fmt: skip
        if m is ctx.largest:
            figures, tables = [study.figure], [table(study.summary)]
    ablation = studies.ablate(ctx.largest.trained["checkpoint"], dataset=VIDEO, clips=a["clips"],
                              random_draws=a["random_draws"], progress=ctx.progress)  # fmt: skip
    d = ablation.summary.data
    numbers = {"sizes": sizes, "ablation": {
        "heads": d["heads"], "delta_ablated": d["ablated"]["delta_later"],
        "delta_random_mean": d["random"]["delta_later_mean"], "delta_random_std": d["random"]["delta_later_std"]}}  # fmt: skip
    return Output(numbers, [*figures, ablation.figure], [*tables, table(ablation.summary)])


SECTIONS = [
    Section(
        "table17",
        "The model family (Table 17)",
        "We scale Toto models by increasing hidden dimension and "
        "number of layers linearly while keeping number of heads constant.",
        claims.reported,
        table17,
    ),
    Section(
        "fig9",
        "Probing across layers and sizes (Fig. 9)",
        "For image classification, action recognition, "
        "and object tracking, all the models behave similarly and peak around 50% of the model depth.",
        claims.probing_depth,
        probing,
        ("probing",),
        version=2,
    ),
    Section(
        "table16",
        "Linear probing (Table 16)",
        "Toto performs better than similar size iGPT models.",
        claims.reported,
        table16,
        ("probing",),
        ("fig9",),
    ),
    Section(
        "table18",
        "Probe heads (Table 18, A.10)",
        "Overall using a high-capacity head improves the performance across all models.",
        claims.probe_heads,
        table18,
        ("probing",),
        ("fig9",),
    ),
    Section(
        "fig10",
        "Loss over frames (Fig. 10, A.3)",
        "There is high loss of the first frame, but the subsequent "
        "frames have relatively lower loss compared to the first frame.",
        claims.first_frame,
        redundancy,
    ),
    Section(
        "a3",
        "Induction heads and ablation (A.3)",
        "This also could be attributed by emergence of induction heads.",
        claims.induction,
        induction,
        ("induction", "ablation"),
        version=2,
    ),
    Section(
        "fig7",
        "Tracking by label propagation (Fig. 7, Table 14)",
        "We follow the protocol in STC by "
        "starting with the GT segmentation mask and propagating the labels using features computed by "
        "Toto-large.",
        claims.tracking,
        tracking,
        ("tracking",),
    ),
    Section(
        "fig11",
        "μP learning-rate transfer (Fig. 11)",
        "With μ-Parameterization we can train all width Toto models with a single optimal learning rate.",
        claims.lr_transfer,
        lr_transfer,
        ("mup",),
        models=False,
    ),
    Section(
        "fig12",
        "n-gram statistics per tokenizer (Figs. 12-13)",
        "On 2-gram distribution, dVAE has more "
        "discrete combination of tokens compared to both VQGAN-1K and VQGAN-16k tokenizers; all the "
        "tokenizers have similar almost flat distribution when it comes to 3-gram tokens.",
        claims.ngrams,
        ngrams,
        ("ngrams",),
        models=False,
    ),
    Section(
        "fig14",
        "Loss against compute (Fig. 14)",
        "We show the training loss curves for multiple variants of our models.",
        claims.scaling,
        scaling,
        ("train", "probing"),
        ("fig9",),
    ),
    Section(
        "fig15",
        "Start tokens select video or images (Fig. 15, A.12-13)",
        "With [1] start token, we see the model generates video, with [3] it generates sequence of images.",
        claims.start_token,
        generation,
        ("generation",),
    ),
    Section(
        "table19",
        "Generation quality (Table 19)",
        "Even though Toto is not trained on curated videos, it is competitive with state-of-the-art methods.",
        claims.reported,
        table19,
        ("generation",),
        ("fig15",),
    ),
]
BY_ID = {s.id: s for s in SECTIONS}
