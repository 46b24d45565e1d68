"""`analysis.embedding`: UMAP per layer, trustworthiness and label separation beside their controls."""

import numpy as np
import pytest
import xarray as xr

from toto_lens.analysis import AnalysisError
from toto_lens.analysis.embedding import embed_layers, knn_accuracy, points_of

FLAGS = {"flag_values": [0, 1, 2], "flag_meanings": "static left right"}


def clusters(n_per: int = 60, dim: int = 16, seed: int = 0) -> xr.DataArray:
    """Layer 0: three far-apart Gaussian clusters, one per label; layer 1: the same points' noise alone."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), n_per)
    centres = rng.normal(size=(3, dim)) * 20
    noise = rng.normal(size=(len(labels), dim))
    acts = np.stack([centres[labels] + noise, noise], axis=1).astype(np.float32)
    return xr.DataArray(
        acts, dims=("clip", "layer", "feature"),
        coords={"clip": np.arange(len(labels)) + 100, "layer": [0, 1], "motion": ("clip", labels, FLAGS)},
    )  # fmt: skip


@pytest.fixture(scope="module")
def embedded():
    return embed_layers(clusters(), label="motion", n_neighbors=10, seed=0)


def test_separated_clusters_are_trustworthy_and_separable_and_shuffled_labels_are_chance(embedded):
    r = embedded.sel(layer=0)
    assert float(r["trustworthiness"]) > 0.9, float(r["trustworthiness"])
    assert float(r["separation"]) > 0.95, float(r["separation"])
    assert float(r["separation_control"]) < 0.55, "three equal classes: chance is 1/3"
    noise = embedded.sel(layer=1)
    assert float(noise["separation"]) < 0.55, "labels that do not shape the features do not separate"
    assert embedded.attrs["majority_share"] == pytest.approx(1 / 3)


def test_result_carries_labels_and_umap_parameters(embedded):
    assert embedded["embedding"].dims == ("layer", "point", "axis") and embedded["embedding"].shape == (
        2,
        180,
        2,
    )
    assert (
        embedded["motion"].dims == ("point",)
        and embedded["motion"].attrs["flag_meanings"] == "static left right"
    )
    assert list(embedded["clip"].values[:2]) == [100, 101]
    a = embedded.attrs
    assert (a["umap_n_neighbors"], a["umap_random_state"], a["points"]) == (10, 0, 180)
    assert embedded["trustworthiness"].attrs["n_neighbors"] == 10
    assert np.isfinite(embedded["trustworthiness_control"].values).all()


def test_same_seed_gives_the_same_embedding_twice(embedded):
    again = embed_layers(clusters(), label="motion", n_neighbors=10, seed=0, control=False)
    np.testing.assert_array_equal(again["embedding"].values, embedded["embedding"].values)
    np.testing.assert_array_equal(again["trustworthiness"].values, embedded["trustworthiness"].values)


def test_frames_become_points_with_their_clip_labels():
    acts = xr.DataArray(
        np.arange(2 * 1 * 3 * 4).reshape(2, 1, 3, 4), dims=("clip", "layer", "frame", "feature"),
        coords={"clip": [7, 9], "layer": [4], "frame": [0, 1, 2], "motion": ("clip", [2, 0], FLAGS)},
    )  # fmt: skip
    pts = points_of(acts)
    assert pts.dims == ("point", "layer", "feature") and pts.shape == (6, 1, 4)
    assert list(pts["clip"].values) == [7, 7, 7, 9, 9, 9] and list(pts["frame"].values) == [0, 1, 2] * 2
    assert list(pts["motion"].values) == [2, 2, 2, 0, 0, 0]
    np.testing.assert_array_equal(pts.values[4, 0], acts.values[1, 0, 1])


def test_knn_accuracy_by_hand():
    xy = np.array([[0, 0], [0, 1], [1, 0], [10, 10], [10, 11], [11, 10]], float)
    assert knn_accuracy(xy, np.array([0, 0, 0, 1, 1, 1]), 2) == 1.0
    assert knn_accuracy(xy, np.array([0, 1, 0, 1, 0, 1]), 2) < 0.5


def test_too_few_points_for_the_neighbours_is_one_line():
    with pytest.raises(AnalysisError, match="trustworthiness needs more than 30 points"):
        embed_layers(clusters(n_per=5), n_neighbors=15)
