"""`studies.lr_sweep` (μP learning-rate transfer, appendix Fig. 11) and `studies.scaling` (validation
loss against training compute over checkpoints, Fig. 14 and A.8).

`lr_sweep` trains every (width, lr) pair under μP and, as the control, under the standard
parametrization, through `toto_lens.train.sweep.sweep_lr`: each pair is a resumable run under
`<cache>/sweeps/<sweep>/w<width>-lr<lr>`, so running it again reads finished pairs back. `scaling` reads
trained checkpoints' logs (no weights are loaded): every validation evaluation becomes a point
(compute, val_loss), with compute C = 6·N·D (Kaplan et al. 2020).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from toto_lens.data.mix import DEFAULT_DATA
from toto_lens.progress import Progress, report, say
from toto_lens.studies.base import Study, StudyError, Summary, command_line, fmt, provenance

PARAM_NAMES = {"mup": "μP", "standard": "standard"}
COMPUTE = (
    "C = 6·N·D: N the parameters without the token embedding and the output layer (Kaplan et al. 2020), "
    "D the tokens seen by that step (batch × (sequence length − 1) a step)"
)


def lr_sweep(
    widths: Sequence[int],
    lrs: Sequence[float],
    *,
    model: str = "toto-tiny",
    steps: int = 100,
    batch_size: int = 8,
    base_width: int | None = None,
    control: bool = True,
    mup: bool = True,
    name: str = "lr-sweep",
    csv: str | os.PathLike | None = None,
    eval_every: int | None = None,
    tokenizer: str = "kmeans-512",
    data: str = DEFAULT_DATA,
    train_clips: int = 1024,
    val_clips: int = 64,
    seed: int = 0,
    progress: Progress | None = None,
) -> Study:
    """Train every (width, lr) pair for `steps` steps under μP (base width: `base_width`, else the
    smallest width) and, with `control`, under the standard parametrization; the best lr per width and
    its spread across widths (`analysis.scaling.lr_transfer`). mup=False runs the standard grid only.

    Each grid is one `sweep_lr` table: by default `<cache>/sweeps/<name>-<mup|standard>.csv`, its runs
    in the folder of the same name; with `csv` the first grid's table is that file and the control's
    lies beside it as `<stem>-standard.csv` (runs in `<cache>/sweeps/<stem>[-standard]/`, as
    `toto-lens train sweep-lr --out x.csv` always named them). eval_every: validate every N steps
    (default: once, at the end; more evaluations give `studies.scaling` a curve per run).
    Options as `toto-lens train sweep-lr`.
    """
    from toto_lens.analysis.scaling import lr_transfer
    from toto_lens.errors import ConfigError
    from toto_lens.figures.scaling import lr_sweep_figure
    from toto_lens.io import check_writable
    from toto_lens.paths import cache_root
    from toto_lens.train.config import TrainConfig
    from toto_lens.train.loop import check_run
    from toto_lens.train.sweep import check_finished, sweep_lr

    widths, lrs = [int(w) for w in widths], [float(x) for x in lrs]
    if not widths or not lrs or min(widths) <= 0 or min(lrs) <= 0:
        raise StudyError(f"--widths and --lrs need positive numbers, got {widths} and {lrs}")
    if len(set(widths)) != len(widths) or len(set(lrs)) != len(lrs):
        raise StudyError(f"--widths and --lrs need distinct values, got {widths} and {lrs}")
    params = (["mup"] if mup else []) + (["standard"] if control or not mup else [])
    base_width = base_width or min(widths)
    every = eval_every or steps
    try:
        common = dict(model=model, steps=steps, batch_size=batch_size, train_clips=train_clips, seed=seed,
                      val_clips=val_clips, tokenizer=tokenizer, data=data, eval_every=every, ckpt_every=steps,
                      log_every=max(1, steps // 10))  # fmt: skip
        configs = {
            p: TrainConfig(**common, mup=p == "mup", base_width=base_width if p == "mup" else None)
            for p in params
        }
    except (ConfigError, TypeError) as e:
        raise StudyError(str(e)) from None
    tables = _tables(params, name, csv, cache_root())
    folders = {p: cache_root() / "sweeps" / tables[p].stem for p in params}  # where sweep_lr puts the runs
    for p in params:  # every grid and table checked before the first run trains
        check_writable(tables[p], "--out" if csv else "TOTO_LENS_CACHE")
        for width in widths:
            check_run(configs[p].replace(width=width, lr=lrs[0]), str(folders[p] / f"w{width}-lr{lrs[0]:g}"))
            for lr in lrs:
                check_finished(
                    configs[p].replace(width=width, lr=lr), folders[p] / f"w{width}-lr{lr:g}", tables[p]
                )
    rows: dict[str, list[dict[str, Any]]] = {}
    for i, p in enumerate(params):
        grid = f"{len(widths)} widths × {len(lrs)} lrs, {steps} steps each"
        say(progress, "lr-sweep", f"{PARAM_NAMES[p]}: {grid}, runs in {folders[p]}")
        note = lambda text, p=p: say(progress, "lr-sweep", f"{PARAM_NAMES[p]}, {text}")  # noqa: E731
        rows[p] = sweep_lr(configs[p], widths, lrs, tables[p], report=note)
        report(progress, "lr-sweep", i + 1, len(params), "grids")
    result = lr_transfer(sweep_dataset(rows, folders))
    result.attrs.update(
        provenance(
            "lr_sweep", None, widths=widths, lrs=lrs, model=model, steps=steps, batch_size=batch_size,
            base_width=base_width, control=control, mup=mup, name=name, eval_every=every,
            tokenizer=tokenizer, data=data, train_clips=train_clips, val_clips=val_clips, seed=seed,
        )
    )  # fmt: skip
    result.attrs["tables"] = {p: str(t) for p, t in tables.items()}
    result.attrs["sweeps"] = {p: str(f) for p, f in folders.items()}
    result.attrs["command"] = command_line(
        "train sweep-lr", "--widths", widths, "--lrs", [f"{x:g}" for x in lrs], "--model", model,
        "--steps", steps, "--batch-size", batch_size, "--base-width", base_width if mup else None,
        "--no-control", not control, "--no-mup", not mup, "--name", None if name == "lr-sweep" else name,
        "--eval-every", eval_every, "--tokenizer", tokenizer, "--data", data, "--train-clips", train_clips,
        "--val-clips", val_clips, "--seed", seed,
    )  # fmt: skip
    return Study("lr_sweep", result, [lr_sweep_figure(result)], lr_sweep_summary(result))


def _tables(params: list[str], name: str, csv: str | os.PathLike | None, root: Path) -> dict[str, Path]:
    if csv is None:
        if not name or Path(name).name != name or name in (".", ".."):
            raise StudyError(f"--name {name!r}: a sweep name is one plain word (its folder under sweeps/)")
        return {p: root / "sweeps" / f"{name}-{p}.csv" for p in params}
    csv = Path(csv)
    if csv.suffix.lower() != ".csv":
        raise StudyError(f"csv {csv.name!r}: the sweep's table is a .csv file")
    return {p: csv if i == 0 else csv.with_name(f"{csv.stem}-{p}{csv.suffix}") for i, p in enumerate(params)}


def sweep_dataset(rows: dict[str, list[dict[str, Any]]], folders: dict[str, Path] | None = None) -> Any:
    """`sweep_lr`'s rows per parametrization → a Dataset over (parametrization, width, lr): val_loss,
    final_train_loss (NaN where a run diverged or is missing) and `run`, each run's folder."""
    import xarray as xr

    params = list(rows)
    widths = sorted({int(r["width"]) for rs in rows.values() for r in rs})
    lrs = sorted({float(r["lr"]) for rs in rows.values() for r in rs})
    shape = (len(params), len(widths), len(lrs))
    val, train = np.full(shape, np.nan), np.full(shape, np.nan)
    run = np.full(shape, "", dtype=object)
    for i, p in enumerate(params):
        for r in rows[p]:
            j, k = widths.index(int(r["width"])), lrs.index(float(r["lr"]))
            val[i, j, k], train[i, j, k] = float(r["val_loss"]), float(r["final_train_loss"])
            if folders:
                run[i, j, k] = str(folders[p] / f"w{int(r['width'])}-lr{float(r['lr']):g}")
    dims = ("parametrization", "width", "lr")
    return xr.Dataset(
        {
            "val_loss": (dims, val, {"units": "nats", "long_name": "validation loss at the last step"}),
            "final_train_loss": (dims, train, {"units": "nats"}),
            "run": (dims, run.astype(str), {"long_name": "the run's checkpoint folder"}),
        },
        coords={"parametrization": params, "width": widths, "lr": lrs},
    )


def best_runs(result: Any, parametrization: str = "mup") -> list[str]:
    """The folder of each width's best run in a `lr_sweep` result (widths whose runs all diverged are
    left out): checkpoints for `scaling`."""
    sel = result.sel(parametrization=parametrization)
    return [
        str(sel["run"].sel(width=w, lr=float(sel["best_lr"].sel(width=w))).item())
        for w in sel["width"].values
        if np.isfinite(float(sel["best_lr"].sel(width=w)))
    ]


def lr_sweep_table(*paths: str | os.PathLike) -> Any:
    """The Dataset of `sweep_dataset` from tables `sweep_lr` wrote (parametrization from their `mup`
    column), for `analysis.scaling.lr_transfer` and `figures.scaling.lr_sweep_figure` without training."""
    import csv

    rows: dict[str, list[dict[str, Any]]] = {}
    for path in paths:
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                rows.setdefault("mup" if r["mup"] == "True" else "standard", []).append(r)
    if not rows:
        raise StudyError(f"no rows in {', '.join(map(str, paths)) or 'no table'}")
    return sweep_dataset({p: rows[p] for p in ("mup", "standard") if p in rows})


def lr_sweep_summary(result: Any) -> Summary:
    """The best lr of each width per parametrization, and how far the widths' best rates lie apart."""
    rows, data, notes = [], {"parametrizations": {}}, []
    for p in (str(v) for v in result["parametrization"].values):
        sel = result.sel(parametrization=p)
        widths = [
            {"width": int(w), "best_lr": float(sel["best_lr"].sel(width=w)),
             "best_lr_log2": float(sel["best_lr_log2"].sel(width=w)),
             "best_val_loss": float(sel["best_val_loss"].sel(width=w))}
            for w in sel["width"].values
        ]  # fmt: skip
        spread, steps = float(sel["best_lr_spread"]), float(sel["spread_steps"])
        shift = float(sel["best_lr_shift_steps"])
        data["parametrizations"][p] = {
            "spread_octaves": spread, "spread_steps": steps, "shift_steps": shift,
            "transfers": bool(sel["transfers"]), "widths": widths,
        }  # fmt: skip
        for w in widths:
            rows.append([PARAM_NAMES.get(p, p), str(w["width"]), fmt(w["best_lr"], "g"),
                         fmt(w["best_lr_log2"], ".2f"), fmt(w["best_val_loss"], ".4f")])  # fmt: skip
        mup_steps = data["parametrizations"].get("mup", {}).get("spread_steps") if p != "mup" else None
        notes.append(_transfer_note(p, spread, steps, shift, mup_steps))
    a = result.attrs
    options = a.get("options") or {}
    data["steps"] = options.get("steps")
    return Summary(
        title=f"learning-rate sweep: best lr per width after {options.get('steps', '?')} steps",
        columns=["parametrization", "width", "best lr", "log2", "val loss"],
        rows=rows,
        data=data,
        notes=notes,
        caption="runs in "
        + ", ".join(str(f) for f in (a.get("sweeps") or {}).values())
        + " (read back when the sweep runs again)",
    )


def _transfer_note(p: str, spread: float, steps: float, shift: float, mup_steps: float | None) -> str:
    """μP: one best lr (≤ 1 grid step apart) or not; the control: does its best lr move more, and which way."""
    if not np.isfinite(steps):
        return f"{PARAM_NAMES.get(p, p)}: every run diverged; no best learning rate"
    moved = f"best lr {steps:g} grid steps apart across widths ({spread:.2f} octaves)"
    if p == "mup":
        verdict = (
            "one best lr for every width" if steps <= 1 else "no single best lr: μP does not transfer here"
        )
        return f"μP: {moved}: {verdict}"
    way = "down" if shift < 0 else "up" if shift > 0 else "back to where it was"
    versus = ""
    if mup_steps is not None and np.isfinite(mup_steps):
        versus = f"; {'more' if steps > mup_steps else 'not more'} than under μP ({mup_steps:g})"
    if steps > 1:
        return f"standard (the control): {moved}, moving {way} as width grows{versus}"
    return f"standard (the control): {moved}{versus}; it usually moves down with width, not in this sweep"


def scaling(
    ckpts: str | os.PathLike | Sequence[str | os.PathLike], *, progress: Progress | None = None
) -> Study:
    """Validation loss against training compute for trained checkpoints, from their logs; a power law
    L = a·C^−α fitted on the compute-efficient frontier of every evaluation of every checkpoint.

    Result: dims (model, eval), NaN-padded: step, tokens, compute, val_loss, on_frontier; per model:
    params (without embedding and output layer), params_total, width, layers, final_step, final_tokens,
    final_compute, final_val_loss; attrs a, alpha, r2, fit_points (NaN/0 with fewer than 2 frontier
    points) and `compute` (how C is counted).
    """
    import xarray as xr

    from toto_lens.analysis import AnalysisError
    from toto_lens.analysis.scaling import frontier, power_law
    from toto_lens.checkpoints import read_metadata, resolve_checkpoint
    from toto_lens.figures.scaling import compute_figure
    from toto_lens.train.state import LOG, read_log

    items = [ckpts] if isinstance(ckpts, str | os.PathLike) else list(ckpts)
    if not items:
        raise StudyError("name at least one checkpoint (--ckpt NAME)")
    models, folders = [], [resolve_checkpoint(item) for item in items]
    for i, folder in enumerate(folders):
        report(progress, "scaling", i, len(folders), "checkpoints")
        meta = read_metadata(folder)
        training = meta.get("training") or {}
        log = read_log(folder, int(training.get("step") or 0) or 10**12)
        evals = [r for r in log if r.get("val_loss") is not None and np.isfinite(r["val_loss"])]
        if not evals:
            raise StudyError(
                f"checkpoint {items[i]} has no validation evaluation in {folder / LOG}; train it with "
                "`toto-lens train` (it validates every --eval-every steps and at the end)"
            )
        models.append((meta["model"], evals, meta.get("weights_sha256", "")))
    report(progress, "scaling", len(folders), len(folders), "checkpoints")
    labels = _labels(items, folders)
    n_eval = max(len(e) for _, e, _ in models)
    shape = (len(models), n_eval)
    step, tokens, loss = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
    params = np.array([mc.num_params(embeddings=False) for mc, _, _ in models], dtype=np.int64)
    for i, (_, evals, _) in enumerate(models):
        step[i, : len(evals)] = [r["step"] for r in evals]
        tokens[i, : len(evals)] = [r["tokens"] for r in evals]
        loss[i, : len(evals)] = [r["val_loss"] for r in evals]
    compute = 6.0 * params[:, None] * tokens
    flat = frontier(compute.ravel(), loss.ravel())
    on = np.zeros(compute.size, dtype=bool)
    on[flat] = True
    try:
        fit = power_law(compute.ravel()[flat], loss.ravel()[flat])
        law = {"a": fit.a, "alpha": fit.alpha, "r2": fit.r2, "fit_points": fit.n}
    except AnalysisError as e:
        law = {"a": np.nan, "alpha": np.nan, "r2": np.nan, "fit_points": 0, "fit_note": f"no fit: {e}"}
    last = np.array([len(e) - 1 for _, e, _ in models])
    rows = np.arange(len(models))
    me, mm = ("model", "eval"), "model"
    result = xr.Dataset(
        {
            "step": (me, step), "tokens": (me, tokens, {"long_name": "tokens seen (D)"}),
            "compute": (me, compute, {"units": "FLOPs", "long_name": COMPUTE}),
            "val_loss": (me, loss, {"units": "nats"}), "on_frontier": (me, on.reshape(shape)),
            "params": (mm, params, {"long_name": "parameters without the token embedding and output layer (N)"}),
            "params_total": (mm, np.array([mc.num_params() for mc, _, _ in models], dtype=np.int64)),
            "width": (mm, np.array([mc.dim for mc, _, _ in models], dtype=np.int64)),
            "layers": (mm, np.array([mc.n_layers for mc, _, _ in models], dtype=np.int64)),
            "final_step": (mm, step[rows, last]), "final_tokens": (mm, tokens[rows, last]),
            "final_compute": (mm, compute[rows, last]), "final_val_loss": (mm, loss[rows, last]),
            "path": (mm, np.array([str(f) for f in folders])),
        },
        coords={"model": labels, "eval": np.arange(n_eval)},
    )  # fmt: skip
    result.attrs.update(provenance("scaling", None, ckpts=[str(c) for c in items]))
    result.attrs.update(law, compute=COMPUTE, checkpoints=labels)
    result.attrs["checkpoint_sha256s"] = [sha for _, _, sha in models]
    result.attrs["command"] = command_line("scaling", "--ckpt", [str(c) for c in items])
    return Study("scaling", result, [compute_figure(result)], scaling_summary(result))


def _labels(items: list[Any], folders: list[Path]) -> list[str]:
    """A checkpoint's name as given (a folder: its name; its parent's too where two names clash)."""
    from toto_lens.paths import is_bare_name

    labels = [str(i) if is_bare_name(str(i)) else f.name for i, f in zip(items, folders, strict=True)]
    clash = {x for x in labels if labels.count(x) > 1}
    labels = [f"{f.parent.name}/{f.name}" if x in clash else x for x, f in zip(labels, folders, strict=True)]
    if len(set(labels)) != len(labels):
        raise StudyError(f"a checkpoint is named twice: {', '.join(map(str, items))}")
    return labels


def scaling_summary(result: Any) -> Summary:
    """Per model its size, the tokens and compute of its last evaluation and its loss there; the law."""
    a = result.attrs
    rows, data_rows = [], []
    for m in result["model"].values:
        sel = result.sel(model=m)
        row = {k: sel[k].item() for k in ("params", "params_total", "width", "layers", "final_step",
                                           "final_tokens", "final_compute", "final_val_loss")}  # fmt: skip
        data_rows.append({"model": str(m), **row})
        rows.append([str(m), str(row["width"]), str(row["layers"]), f"{row['params']:,}",
                     f"{row['final_tokens']:,.0f}", fmt(row["final_compute"], ".3g"),
                     fmt(row["final_val_loss"], ".4f")])  # fmt: skip
    law = {k: a.get(k) for k in ("a", "alpha", "r2", "fit_points")}
    if np.isfinite(float(a["alpha"])):
        caption = (
            f"fit on the frontier ({a['fit_points']} points): L = {a['a']:.3g}·C^−{a['alpha']:.3g}, "
            f"r² = {a['r2']:.3f}"
        )
    else:
        caption = a.get("fit_note", "no fit")
    return Summary(
        title="validation loss against training compute",
        columns=["model", "width", "layers", "params (N)", "tokens (D)", "compute (6·N·D)", "final val loss"],
        rows=rows,
        data={"models": data_rows, **law, "compute": a["compute"]},
        notes=[f"compute: {a['compute']}"],
        caption=caption,
    )
