"""`studies.track`: label propagation through the clips of a cache, layer by layer, scored with J&F.

The Table 14 / Fig. 7 analogue: each layer's per-token activations (`acts_token`) propagate the first
frame's object masks (the store's `masks`) through the clip (`toto_lens.analysis.tracking`), scored with
the DAVIS 2017 J&F (`toto_lens.analysis.davis`), beside two baselines on the same clips: the first frame's
mask copied to every frame (`copy-first`: what no motion would score), every frame's true labels on the
token grid (`token-oracle`: the most any propagation over tokens can score) and raw pixel patches as
features (`pixels`, from the clips the store's data source gives again, checked against the store's masks).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from toto_lens.errors import TotoLensError
from toto_lens.progress import Progress, report
from toto_lens.studies.base import (
    Study,
    StudyError,
    Summary,
    cache_args,
    command_line,
    fmt,
    open_study_cache,
    provenance,
)

EXTRACT_TOKENS = "extract it with per-token activations (toto-lens extract --acts pooled,frame,token)"


def track(
    ckpt: str | os.PathLike | None = None,
    *,
    cache: Any = None,
    dataset: str | None = None,
    layers: str | Sequence[int] = "all",
    clips: int = 64,
    topk: int = 5,
    context: int = 7,
    radius: int = 2,
    temperature: float = 0.1,
    show: int = 4,
    pixels: bool = True,
    progress: Progress | None = None,
) -> Study:
    """J&F of label propagation by each layer's token features on the first `clips` complete clips that
    have per-token activations, beside copy-first and (`pixels`) raw-pixel baselines; `show` clips' masks
    kept for the figure. Options as `toto-lens track`."""
    from toto_lens.analysis import AnalysisError
    from toto_lens.analysis.tracking import BASELINES, PIXELS, Propagation, pixel_features
    from toto_lens.analysis.tracking import track as track_clips

    if clips <= 0 or show < 0:
        raise StudyError(f"clips={clips}, show={show}: tracking needs at least one clip and show ≥ 0")
    try:
        settings = Propagation(topk=topk, context=context, radius=radius, temperature=temperature)
    except AnalysisError as e:
        raise StudyError(str(e)) from None
    ds = open_study_cache(ckpt, cache, dataset)
    for var in ("acts_token", "masks"):
        if var not in ds.variables:
            raise StudyError(
                f"the cache holds no {var}; tracking reads per-token features and masks: {EXTRACT_TOKENS}"
            )
    index, visual, grid = _token_clips(ds, clips)
    chosen = _layers(ds, layers)
    masks = np.asarray(ds["masks"].isel(clip=index).values)
    clip_ids = np.asarray(ds["clip"].values)[index]
    frames, notes = _source_frames(ds, clip_ids, masks) if pixels else (None, [])

    def layer_features(layer: int):
        def load() -> np.ndarray:
            x = ds["acts_token"].sel(layer=layer).isel(clip=index, position=visual)
            x = np.asarray(x.transpose("clip", "position", "feature").values, dtype=np.float32)
            if not np.isfinite(x).all():
                raise StudyError(
                    f"acts_token of layer {layer} holds NaN or infinity on clips that should have it"
                )
            return x.reshape(len(index), masks.shape[1], *grid, -1)

        return load

    predictors: dict[str, Any] = {f"layer-{layer}": layer_features(layer) for layer in chosen}
    if frames is not None:
        predictors[PIXELS] = lambda: np.stack([pixel_features(f, grid) for f in frames])
    total = len(predictors) + len(BASELINES)
    done = iter(range(1, total + 1))
    report(progress, "track", 0, total, "predictors")
    try:
        result = track_clips(
            predictors, masks, clip_ids, grid, settings, show=show, frames=frames,
            progress=lambda name: report(progress, "track", next(done), total, "predictors", predictor=name),
        )  # fmt: skip
    except AnalysisError as e:
        raise StudyError(str(e)) from None
    result.attrs.update(provenance(
        "track", ds, layers=chosen, clips=len(index), topk=topk, context=context, radius=radius,
        temperature=temperature, show=show, pixels=pixels,
    ))  # fmt: skip
    result.attrs["clips"] = len(index)
    result.attrs["notes"] = notes
    result.attrs["command"] = command_line(
        "track", *cache_args(ckpt, cache, ds, dataset),
        "--layers", None if isinstance(layers, str) and layers == "all" else ",".join(map(str, chosen)),
        "--clips", clips, "--topk", topk, "--context", context, "--radius", radius,
        "--temperature", temperature, "--show", show, "--no-pixels", not pixels,
    )  # fmt: skip
    from toto_lens.figures.tracking import tracking_figure, tracking_masks_figure

    figures = [tracking_figure(result)] + ([tracking_masks_figure(result)] if result.sizes["shown"] else [])
    return Study(
        "track", result, figures, tracking_summary(result), title="Label propagation (J&F per layer)"
    )


def _token_clips(ds: Any, clips: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """(clip indices, visual positions in frame-major order, token grid) of the first `clips` complete
    clips that have acts_token (the extractor writes it for the first `token_clips` clips)."""
    from toto_lens.analysis.token_cache import grid_of

    f, r, c = grid_of(ds)
    visual = np.flatnonzero(f >= 0)
    visual = visual[np.lexsort((c[visual], r[visual], f[visual]))]
    grid = (int(r.max()) + 1, int(c.max()) + 1)
    frames = int(f.max()) + 1
    if visual.size != frames * grid[0] * grid[1]:
        raise StudyError(f"the cache's positions do not form {frames} frames of {grid[0]}×{grid[1]} tokens")
    token_clips = int((ds.toto.attr("request") or {}).get("token_clips", ds.sizes["clip"]))
    complete = (
        np.asarray(ds["complete"].values) == 1
        if "complete" in ds.variables
        else np.ones(ds.sizes["clip"], bool)
    )
    have = np.flatnonzero(complete[:token_clips])[:clips]
    if have.size == 0:
        raise StudyError(f"no complete clip of the cache has acts_token; {EXTRACT_TOKENS}")
    return have, visual, grid


def _layers(ds: Any, layers: str | Sequence[int]) -> list[int]:
    held = [int(v) for v in ds["layer"].values]
    if isinstance(layers, str) and layers == "all":
        return held
    try:
        wanted = [int(v) for v in layers.split(",")] if isinstance(layers, str) else [int(v) for v in layers]
    except ValueError:
        raise StudyError(f"layers {layers!r}: give all, or layer numbers such as 0,2,-1") from None
    try:
        chosen = [int(v) for v in np.atleast_1d(ds.toto.layer(wanted))]
    except (KeyError, IndexError, ValueError):
        chosen = []
    if not chosen or not set(chosen) <= set(held):
        raise StudyError(f"layers {wanted}: the cache holds layers {', '.join(map(str, held))}")
    return chosen


def _source_frames(ds: Any, clip_ids: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray | None, list[str]]:
    """The clips' frames, from the store's data source opened again, when its masks are the store's; else
    None and a note saying why the pixels baseline is left out."""
    from toto_lens.data import open_source
    from toto_lens.io import dict_attr

    data = dict_attr(ds.attrs, "dataset")
    where = (data.get("spec") or {}).get("store") or data.get("source")
    try:
        source = open_source(
            where, split=data["split"], n_clips=int(data["clips"]), seed=int(data.get("seed", 0))
        )
        clips = [source[int(i)] for i in clip_ids]
    except (TotoLensError, KeyError, TypeError, IndexError, OSError) as e:
        return None, [f"note: no pixels baseline: the clips of data {where!r} cannot be opened again ({e})"]
    if any(
        c.masks.shape != m.shape or not np.array_equal(c.masks, m) for c, m in zip(clips, masks, strict=True)
    ):
        return None, [f"note: no pixels baseline: data {where!r} now gives other clips than the cache holds"]
    return np.stack([c.frames for c in clips]), []


def tracking_summary(result: Any) -> Summary:
    """J&F, J and F (Means) with Recall and Decay per method; the best layer against the baselines."""
    from toto_lens.analysis.tracking import COPY_FIRST, ORACLE, PIXELS, best_layer

    a = result.attrs
    rows = []
    for method in result["predictor"].values:
        one = result.sel(predictor=method)
        rows.append({"predictor": str(method), **{k: float(one[k]) for k in (
            "JF", "J", "F", "J_recall", "F_recall", "J_decay", "F_decay")}})  # fmt: skip
    best = best_layer(result)
    by = {r["predictor"]: r for r in rows}
    notes = list(a.get("notes") or [])
    if best is not None:
        parts = [f"best layer {best.split('-', 1)[1]}: J&F {fmt(by[best]['JF'])}"]
        parts += [f"{m} {fmt(by[m]['JF'])}" for m in (COPY_FIRST, PIXELS, ORACLE) if m in by]
        notes.append(", ".join(parts))
    return Summary(
        title=f"Label propagation on {a.get('clips')} clips ({a.get('objects')} objects), J&F per predictor",
        columns=["predictor", "J&F", "J", "F", "J recall", "F recall", "J decay", "F decay"],
        rows=[
            [
                r["predictor"],
                *(fmt(r[k]) for k in ("JF", "J", "F", "J_recall", "F_recall", "J_decay", "F_decay")),
            ]
            for r in rows
        ],  # fmt: skip
        data={
            "best_layer": None if best is None else int(best.split("-", 1)[1]),
            "clips": a.get("clips"),
            "objects": a.get("objects"),
            "rows": rows,
            "settings": {
                k.removeprefix("propagation_"): v for k, v in a.items() if k.startswith("propagation_")
            },
        },  # fmt: skip
        notes=notes,
        caption=(
            f"top-{a.get('propagation_topk')} of the first frame and {a.get('propagation_context')} previous "
            f"frames, radius {a.get('propagation_radius')} tokens, τ {a.get('propagation_temperature')}; "
            f"DAVIS 2017 J and F (boundary tolerance {a.get('boundary_tolerance_px')} px), the first and last "
            "frames not scored; copy-first: the first mask on every frame; pixels: raw patches as features; "
            "token-oracle: every frame's true token labels (the grid's ceiling, not a tracker)"
        ),
    )
