"""UMAP of layer representations: each layer's activations embedded in 2-D, with numbers beside the picture.

Input is activations with dims (clip, layer, feature) — `acts_pooled` of a cache — or
(clip, layer, frame, feature) — `acts_frame`, flattened to one point per (clip, frame). Each layer is
embedded on its own with umap-learn (a fixed `random_state`, so the same call gives the same embedding).

Two numbers per layer say how far to believe the picture:

- trustworthiness (`sklearn.manifold.trustworthiness`, with the UMAP's `n_neighbors`): 1 when every
  2-D neighbourhood holds only points that were neighbours in the full space. Its control is the same
  score for the same features with each column shuffled across points (marginals kept, joint structure
  gone): what UMAP's own clumping gives on data with no structure.
- label separation: leave-one-out k-nearest-neighbour accuracy of a label in the 2-D embedding. Its
  control is the same accuracy with the labels shuffled across points (chance, for these class sizes);
  a real number near it means the clusters in the picture are not the label's.

umap-learn is imported only when an embedding is computed (its import and first fit take seconds).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import xarray as xr

from toto_lens.analysis import AnalysisError

MIN_DIST = 0.1


def points_of(acts: xr.DataArray) -> xr.DataArray:
    """(point, layer, feature) from (clip, layer, feature) or (clip, layer, frame, feature), the clip's
    coordinates (labels) carried along each point, with `clip` (and `frame`) as plain point coordinates."""
    if "frame" in acts.dims:
        stacked = acts.transpose("clip", "frame", "layer", "feature")
        n_clip, n_frame = stacked.sizes["clip"], stacked.sizes["frame"]
        values = np.asarray(stacked.values).reshape(n_clip * n_frame, stacked.sizes["layer"], -1)
        index = {"clip": np.repeat(np.arange(n_clip), n_frame), "frame": np.tile(np.arange(n_frame), n_clip)}
    else:
        stacked = acts.transpose("clip", "layer", "feature")
        values = np.asarray(stacked.values)
        index = {"clip": np.arange(stacked.sizes["clip"])}
    coords: dict[str, Any] = {"layer": acts["layer"].values}
    for dim, take in index.items():
        coords[dim] = ("point", np.asarray(acts[dim].values)[take] if dim in acts.coords else take)
    for name in acts.coords:
        if name not in ("clip", "frame") and acts[name].dims == ("clip",):
            coords[name] = ("point", np.asarray(acts[name].values)[index["clip"]], dict(acts[name].attrs))
    return xr.DataArray(values, dims=("point", "layer", "feature"), coords=coords, name="acts")


def knn_accuracy(embedding: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Leave-one-out accuracy of a k-nearest-neighbour majority vote (ties to the smallest code)."""
    from sklearn.neighbors import NearestNeighbors

    labels = np.asarray(labels)
    k = min(k, len(labels) - 1)
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(embedding).kneighbors(embedding)
    neighbours = labels[idx[:, 1:]]  # the first neighbour is the point itself
    classes, coded = np.unique(neighbours, return_inverse=True)
    counts = np.zeros((len(labels), len(classes)), dtype=np.int64)
    np.add.at(counts, (np.repeat(np.arange(len(labels)), k), coded.ravel()), 1)
    return float(np.mean(classes[counts.argmax(1)] == labels))


def embed_layers(
    acts: xr.DataArray,
    *,
    label: str | None = None,
    n_neighbors: int = 15,
    seed: int = 0,
    control: bool = True,
    progress: Callable[[int], None] | None = None,
) -> xr.Dataset:
    """2-D UMAP of every layer of `acts` (see the module docstring), its trustworthiness, and (with a
    `label` coordinate along clip) the label's kNN accuracy in 2-D beside shuffled labels; `control`:
    also embed column-shuffled features for the trustworthiness control. `progress(1)` after each layer."""
    import warnings

    from sklearn.manifold import trustworthiness

    pts = acts if "point" in acts.dims else points_of(acts)
    n = pts.sizes["point"]
    if n_neighbors < 2:
        raise AnalysisError(f"n_neighbors={n_neighbors}: UMAP needs at least 2")
    if n <= 2 * n_neighbors:
        raise AnalysisError(
            f"{n} points for n_neighbors={n_neighbors}: trustworthiness needs more than {2 * n_neighbors} "
            "points; use more clips, --source frame, or fewer neighbours"
        )
    if label is not None and label not in pts.coords:
        raise AnalysisError(f"no label {label!r} on the points")
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs value.*")  # random_state forces one thread
        warnings.filterwarnings("ignore", category=FutureWarning)
        import umap  # lazy: seconds to import, more to compile on the first fit

    def fit(x: np.ndarray) -> np.ndarray:
        reducer = umap.UMAP(n_neighbors=n_neighbors, min_dist=MIN_DIST, n_components=2, random_state=seed)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*n_jobs value.*")
            return np.asarray(reducer.fit_transform(x), dtype=np.float32)

    scored, codes, shuffled = None, None, None
    if label is not None:
        codes = np.asarray(pts[label].values)
        known = pts[label].attrs.get("flag_values")
        scored = np.isin(codes, np.atleast_1d(known)) if known is not None else np.ones(n, bool)
        shuffled = rng.permutation(codes[scored])
    layers = pts["layer"].values
    emb = np.zeros((len(layers), n, 2), np.float32)
    trust, trust_ctrl = np.full(len(layers), np.nan), np.full(len(layers), np.nan)
    sep, sep_ctrl = np.full(len(layers), np.nan), np.full(len(layers), np.nan)
    for i in range(len(layers)):
        x = np.asarray(pts.isel(layer=i).values, dtype=np.float32)
        emb[i] = fit(x)
        trust[i] = trustworthiness(x, emb[i], n_neighbors=n_neighbors)
        if control:
            noise = np.stack([rng.permutation(col) for col in x.T], axis=1)
            trust_ctrl[i] = trustworthiness(noise, fit(noise), n_neighbors=n_neighbors)
        if scored is not None and scored.sum() > n_neighbors:
            sep[i] = knn_accuracy(emb[i][scored], codes[scored], n_neighbors)
            sep_ctrl[i] = knn_accuracy(emb[i][scored], shuffled, n_neighbors)
        if progress is not None:
            progress(1)
    coords = {k: v for k, v in pts.coords.items() if k != "layer" and "point" in v.dims}
    out = xr.Dataset(
        {
            "embedding": (("layer", "point", "axis"), emb, {"long_name": "UMAP coordinates"}),
            "trustworthiness": ("layer", trust, {"n_neighbors": n_neighbors}),
            "trustworthiness_control": (
                "layer", trust_ctrl, {"long_name": "trustworthiness of column-shuffled features"},
            ),
        },
        coords={"layer": layers, "axis": [0, 1], **coords},
    )  # fmt: skip
    if label is not None:
        out["separation"] = (
            "layer",
            sep,
            {"long_name": f"leave-one-out {n_neighbors}-NN accuracy of {label}"},
        )
        out["separation_control"] = ("layer", sep_ctrl, {"long_name": "the same with shuffled labels"})
        out.attrs["label"] = label
        _, counts = np.unique(codes[scored], return_counts=True)
        out.attrs["majority_share"] = float(counts.max() / counts.sum()) if counts.size else float("nan")
    out.attrs.update(
        umap_n_neighbors=n_neighbors, umap_min_dist=MIN_DIST, umap_n_components=2, umap_random_state=seed,
        umap_metric="euclidean", points=n,
    )  # fmt: skip
    return out
