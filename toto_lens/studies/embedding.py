"""`studies.embed`: a 2-D UMAP of each layer's representations of the clips of a cache.

Each layer's pooled activations (one point per clip) or per-frame activations (one per clip and frame)
embedded with UMAP, coloured by a label of the clips, with trustworthiness and the label's kNN accuracy
in 2-D beside their controls (column-shuffled features, shuffled labels): see
`toto_lens.analysis.embedding`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

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

SOURCES = {"pooled": "acts_pooled", "frame": "acts_frame"}


def labels_of(ds: Any) -> list[str]:
    """The clip labels of a cache: coordinates along clip other than clip itself."""
    return sorted(str(k) for k in ds.coords if k != "clip" and ds[k].dims == ("clip",))


def embed(
    ckpt: str | os.PathLike | None = None,
    *,
    cache: Any = None,
    dataset: str | None = None,
    label: str = "motion",
    source: str = "pooled",
    layers: str | Sequence[int] = "all",
    n_neighbors: int = 15,
    seed: int = 0,
    max_points: int = 2048,
    progress: Progress | None = None,
) -> Study:
    """UMAP of each layer's `source` activations ("pooled": a point per clip, "frame": per clip and
    frame), coloured by `label`; at most `max_points` points (a random subset, fixed by `seed`).
    Options as `toto-lens embed`."""
    from toto_lens.analysis.embedding import embed_layers, points_of
    from toto_lens.analysis.token_cache import complete_clips
    from toto_lens.figures.embedding import embedding_figure

    if source not in SOURCES:
        raise StudyError(f"source={source!r}: choose one of {', '.join(SOURCES)}")
    if max_points <= 0:
        raise StudyError(f"max_points={max_points}: the embedding needs at least one point")
    ds = open_study_cache(ckpt, cache, dataset)
    known = labels_of(ds)
    if label not in known:
        raise StudyError(f"label {label!r}: the cache's labels are {', '.join(known) or 'none'}")
    var = SOURCES[source]
    if var not in ds.variables:
        raise StudyError(f"the cache holds no {var} (source {source!r}); extract it with that activation")
    ds = complete_clips(ds)
    acts = ds[var]
    if not (isinstance(layers, str) and layers == "all"):
        wanted = [int(v) for v in layers.split(",")] if isinstance(layers, str) else list(layers)
        try:
            acts = acts.sel(layer=ds.toto.layer(wanted))
        except KeyError:
            raise StudyError(
                f"layers {wanted}: the cache holds layers {', '.join(map(str, ds['layer'].values))}"
            ) from None
    pts = points_of(acts)
    if pts.sizes["point"] > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(pts.sizes["point"], max_points, replace=False))
        pts = pts.isel(point=keep)
    total = pts.sizes["layer"]
    report(progress, "embed", 0, total, "layers")
    done = iter(range(1, total + 1))
    try:
        result = embed_layers(
            pts, label=label, n_neighbors=n_neighbors, seed=seed,
            progress=lambda _: report(progress, "embed", next(done), total, "layers"),
        )  # fmt: skip
    except ValueError as e:
        raise StudyError(str(e).splitlines()[0]) from None
    result.attrs.update(
        provenance("embed", ds, label=label, source=source, layers=layers if isinstance(layers, str) else
                   list(map(int, layers)), n_neighbors=n_neighbors, seed=seed, max_points=max_points)
    )  # fmt: skip
    result.attrs["source"] = source
    layer_arg = None if isinstance(layers, str) and layers == "all" else (
        layers if isinstance(layers, str) else ",".join(map(str, layers)))  # fmt: skip
    result.attrs["command"] = command_line(
        "embed", *cache_args(ckpt, cache, ds, dataset), "--label", label, "--source", source,
        "--layers", layer_arg, "--n-neighbors", n_neighbors, "--seed", seed, "--max-points", max_points,
    )  # fmt: skip
    return Study("embed", result, [embedding_figure(result)], embedding_summary(result))


def embedding_summary(result: Any) -> Summary:
    """Per layer: trustworthiness and the label's kNN accuracy in 2-D, each beside its control."""
    a = result.attrs
    rows = []
    for layer in result["layer"].values:
        one = result.sel(layer=layer)
        rows.append({
            "layer": int(layer),
            "trustworthiness": float(one["trustworthiness"]),
            "trustworthiness_control": float(one["trustworthiness_control"]),
            "separation": float(one["separation"]) if "separation" in one else float("nan"),
            "separation_control": float(one["separation_control"]) if "separation" in one else float("nan"),
        })  # fmt: skip
    k = a.get("umap_n_neighbors")
    data = {"label": a.get("label"), "source": a.get("source"), "points": a.get("points"),
            "n_neighbors": k, "majority_share": a.get("majority_share"), "rows": rows}  # fmt: skip
    return Summary(
        title=f"UMAP of each layer ({a.get('points')} points, {a.get('source')}), label {a.get('label')}",
        columns=["layer", "trustworthiness", "shuffled features", f"{k}-NN accuracy", "shuffled labels"],
        rows=[
            [
                str(r["layer"]),
                fmt(r["trustworthiness"]),
                fmt(r["trustworthiness_control"]),
                fmt(r["separation"], ".1%"),
                fmt(r["separation_control"], ".1%"),
            ]
            for r in rows
        ],  # fmt: skip
        data=data,
        notes=[f"largest class: {fmt(a.get('majority_share'), '.1%')} of the points"],
        caption=(
            f"trustworthiness with n_neighbors={k}; accuracy: leave-one-out {k}-NN vote of the label in 2-D; "
            "controls: features shuffled per column, labels shuffled across points"
        ),
    )
