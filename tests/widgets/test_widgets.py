"""`toto_lens.widgets`: each control, set from Python, rewrites its figures' traces in place with the
right numbers (checked against the study's result, the store and a hook-free recomputation), and each
explorer builds from a Study, from a bare result and from a result read back from disk."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import xarray as xr
from extract_helpers import make_checkpoint
from helpers import reference_patterns

from toto_lens import load_checkpoint, open_cache, studies
from toto_lens.data.layout import layout_of
from toto_lens.io import dict_attr
from toto_lens.run import extract
from toto_lens.tokenizers import tokenizer_from_spec
from toto_lens.widgets import (
    WidgetError,
    head_explorer,
    linear_probe_predictions,
    loss_explorer,
    probing_explorer,
)


@pytest.fixture(scope="module")
def tiny(cache_root):
    """A real checkpoint, its store (40 clips; patterns written for the first 2) and the two studies."""
    with cache_root("widgets-cache") as root:
        make_checkpoint("tiny")
        extract("tiny", clips=40, batch_size=20, acts=("pooled", "frame", "token"), attn=("frame", "pattern"),
                pattern_clips=2)  # fmt: skip
        store = open_cache("tiny").encoding["source"]
        probing = studies.probing(cache=store, tasks="digit,position", seeds=2)
        induction = studies.induction("tiny", n=8, batch=2)
    return SimpleNamespace(root=root, store=store, probing=probing, induction=induction)


@pytest.fixture(autouse=True)
def _registry(_isolated_cache, tiny, monkeypatch):
    """The module's checkpoint registry, so that the checkpoint name `tiny` resolves in every test."""
    monkeypatch.setenv("TOTO_LENS_CACHE", str(tiny.root))


def _accuracy_tolerance(n_val: int) -> float:
    # One problem fitted alone against many batched: the rounding may move one val row, no more.
    return 1.0 / n_val + 1e-9


def test_probing_layer_slider_moves_the_marker_in_place(tiny):
    e = probing_explorer(tiny.probing, prefetch=False)
    result = tiny.probing.result
    curve, marker = e.curve, e.curve.data[3]
    for layer in (2, 0, 1):
        e.layer.value = layer
        depth = float(result["depth"].sel(layer=layer))
        mean = float(result["val_score"].sel(task="digit", probe="linear", layer=layer).mean("seed"))
        assert np.allclose(e.curve.data[3].x, [depth]), f"the marker is not at layer {layer}'s depth"
        assert np.allclose(e.curve.data[3].y, [mean]), f"the marker is not on the seed-mean curve at {layer}"
    assert e.curve is curve and e.curve.data[3] is marker, "a slider move replaced the figure or its trace"
    assert curve in e.widget.children[2].children, "the displayed box no longer holds the figure"
    std = result["val_score"].sel(task="digit", probe="linear").std("seed", ddof=1).values
    mean = result["val_score"].sel(task="digit", probe="linear").mean("seed").values
    assert np.allclose(e.curve.data[1].y, mean), "the curve is not the seed mean of the result"
    assert np.allclose(np.asarray(e.curve.data[0].y)[: len(mean)], mean + std), "the band is not mean + std"


def test_confusion_matrix_is_the_linear_probe_the_study_scored(tiny):
    e = probing_explorer(tiny.probing, prefetch=False)
    result = tiny.probing.result
    confusion = e.confusion
    for layer in (0, 2):
        e.layer.value = layer
        heat = e.confusion.data[0]
        counts = np.asarray(heat.text, dtype=np.int64)
        n_val = int(result["n_val"].sel(task="digit", probe="linear", seed=0))
        assert counts.sum() == n_val, (
            f"the confusion counts {counts.sum()} clips, the study's val split {n_val}"
        )
        expected = float(result["val_score"].sel(task="digit", probe="linear", layer=layer, seed=0))
        assert abs(np.trace(counts) / counts.sum() - expected) <= _accuracy_tolerance(n_val), (
            f"layer {layer}: the confusion's accuracy is not the study's val score {expected:.3f}"
        )
        share = np.asarray(heat.z)
        assert np.allclose(share.sum(1)[counts.sum(1) > 0], 1), "colour is not the share of each true class"
    fitted = e.predictions
    e.layer.value = 0
    e.layer.value = 2
    assert e.predictions is fitted, "going back to a layer fitted its probe again instead of reusing it"
    alone = linear_probe_predictions(open_cache(path=tiny.store), "digit", 2, 0)
    assert np.array_equal(alone.y_pred, fitted.y_pred), (
        "the explorer's probe is not linear_probe_predictions'"
    )
    assert e.confusion is confusion, "a layer move replaced the confusion figure"


def test_a_regression_task_shows_predicted_against_true(tiny):
    e = probing_explorer(tiny.probing, prefetch=False)
    e.layer.value = 1
    e.task.value = "position"
    heat, points, _ = e.confusion.data
    assert not heat.visible and points.visible, "a regression task must show the scatter, not a heatmap"
    p = e.predictions
    k = p.y_true.shape[1]
    true, pred = np.asarray(points.x).reshape(-1, k), np.asarray(points.y).reshape(-1, k)
    assert np.allclose(true, p.y_true) and np.allclose(pred, p.y_pred), "the scatter is not (true, predicted)"
    r2 = np.mean(1 - ((true - pred) ** 2).sum(0) / ((true - true.mean(0)) ** 2).sum(0))
    expected = float(tiny.probing.result["val_score"].sel(task="position", probe="linear", layer=1, seed=0))
    assert abs(r2 - expected) < 1e-6, f"the scatter's R² {r2:.4f} is not the study's {expected:.4f}"
    assert e.curve.layout.yaxis.title.text == "R²", "the curve's axis still names the classification metric"


def test_probing_explorer_builds_from_a_bare_result_read_back_from_disk(tiny, tmp_path):
    written = tiny.probing.save(tmp_path / "probing.nc")
    result = xr.open_dataset(written["data"])
    e = probing_explorer(result, prefetch=False)  # the store the study recorded
    assert e.cache is not None and e.confusion.data[0].visible, "the recorded store was not found"
    bare = result.copy()
    bare.attrs = {k: v for k, v in result.attrs.items() if k not in ("cache", "checkpoint")}
    no_cache = probing_explorer(bare, prefetch=False)
    assert not any(t.visible for t in no_cache.confusion.data), "without a cache no probe can be shown"
    assert "no cache" in no_cache.confusion.layout.title.text, "say why the right panel is empty"
    with pytest.raises(WidgetError, match="probing"):
        probing_explorer(tiny.induction)


def test_prefetched_layers_are_the_same_fits(tiny):
    e = probing_explorer(tiny.probing)  # the other layers fit in the background
    e.layer.value = 0
    ahead = e.predictions
    slow = linear_probe_predictions(open_cache(path=tiny.store), "digit", 0, 0)
    assert np.array_equal(ahead.y_pred, slow.y_pred), "a prefetched fit differs from fitting it on demand"
    e.close()


def test_loss_explorer_draws_the_clips_loss_on_its_frame_grid(tiny):
    e = loss_explorer(tiny.store)
    ds = open_cache(path=tiny.store)
    lay = layout_of(ds)
    image, curve = e.image, e.curve
    loss = ds["loss"].values
    e.clip.value, e.frame.value = 3, 5
    grid = loss[3, lay.frame_slice(5)].reshape(lay.rows, lay.cols)
    assert np.allclose(e.image.data[1].z, grid, equal_nan=True), "the overlay is not clip 3's frame-5 loss"
    ckpt = load_checkpoint(dict_attr(ds.attrs, "checkpoint")["path"])
    tok = tokenizer_from_spec(dict_attr(ds.attrs, "tokenizer"), ckpt.tokenizer_state)
    pixels = tok.decode(lay.unpack(ds["tokens"].values[3]))[5]
    assert np.allclose(e.image.data[0].z, pixels, atol=1e-6), "the pixels are not clip 3's frame 5 decoded"
    per_frame = np.nanmean(loss[:, 1:-1].reshape(len(loss), lay.frames, -1), -1)
    assert np.allclose(e.curve.data[2].y, per_frame[3]), "the clip's curve is not its mean loss per frame"
    assert np.allclose(e.curve.data[1].y, per_frame.mean(0)), "the reference is not the mean over clips"
    assert list(e.curve.data[3].x) == [5], "the marker is not at the chosen frame"
    e.opacity.value = 0.3
    assert e.image.data[1].opacity == 0.3, "the opacity slider did not reach the overlay"
    assert e.image is image and e.curve is curve, "a slider move replaced a figure"


def test_head_explorer_shows_the_stored_pattern_of_the_chosen_head(tiny):
    e = head_explorer(tiny.induction)  # the cache of the checkpoint the study names
    ds = open_cache(path=tiny.store)
    lay = layout_of(ds)
    pattern_fig = e.pattern
    model = load_checkpoint(dict_attr(ds.attrs, "checkpoint")["path"]).model
    with torch.no_grad():
        for clip, source, rtol in ((0, "store", 2e-3), (5, "model", 1e-4)):  # float16 in the store
            patterns, _ = reference_patterns(
                model, torch.as_tensor(ds["tokens"].values[clip : clip + 1]).long()
            )
            with e.hold():
                e.clip.value, e.layer.value, e.head.value, e.qframe.value = clip, 2, 1, 3
            assert e.source == source, f"clip {clip}'s pattern should come from the {source}"
            q = lay.frame_slice(3)
            expected = patterns[1][0, 1, q, : q.stop].numpy()
            assert np.allclose(e.pattern.data[0].z, expected, rtol=rtol, atol=1e-6), (
                f"clip {clip}: the pattern shown is not layer 2 head 1's (block 1) on frame 3's queries"
            )
            frames = ds["attn_frame"].isel(clip=clip).sel(layer=2, head=1).values
            assert np.allclose(e.frames.data[0].z, frames, rtol=rtol, atol=1e-5), (
                "frame mass is not attn_frame's"
            )
    assert e.pattern is pattern_fig, "a control change replaced the pattern figure"


def test_clicking_a_cell_selects_that_head(tiny):
    e = head_explorer(tiny.induction.result, cache=tiny.store)  # a bare result
    # What the front end sends for a click on the cell (layer 1, head 0): points of every trace under it.
    points = {"xs": [0], "ys": [1], "point_indexes": [[0, 0]], "trace_indexes": [0]}
    e.grid._js2py_pointsCallback = {"event_type": "plotly_click", "points": points, "device_state": {}}
    assert (e.layer.value, e.head.value) == (1, 0), "a click did not select the clicked (layer, head)"
    assert (list(e.grid.data[1].x), list(e.grid.data[1].y)) == ([0], [1]), "the selection box did not move"
    pattern, _ = e.clip_patterns(e.clip.value, 1)
    q = layout_of(e.cache).frame_slice(e.qframe.value)
    assert np.allclose(e.pattern.data[0].z, pattern[0, q, : q.stop]), "the pattern is not the clicked head's"


def test_score_dropdown_swaps_the_grid_in_place(tiny, tmp_path):
    written = tiny.induction.save(tmp_path / "induction.nc")
    e = head_explorer(xr.open_dataset(written["data"]), cache=tiny.store)
    grid, heat = e.grid, e.grid.data[0]
    e.score.value = "previous_frame"
    expected = tiny.induction.result["previous_frame"].transpose("layer", "head").values
    assert np.allclose(e.grid.data[0].z, expected), "the grid does not show the chosen score"
    assert e.grid is grid and e.grid.data[0] is heat, "the score change replaced the grid or its heatmap"


def test_explorers_show_as_their_widget(tiny):
    e = loss_explorer(open_cache(path=tiny.store))
    bundle = e._repr_mimebundle_()
    view = bundle["application/vnd.jupyter.widget-view+json"]
    assert view["model_id"] == e.widget.model_id, "a bare explorer must display its widget"


def test_a_result_stacked_over_checkpoints_shows_the_chosen_one(tiny):
    one = tiny.induction.result
    early = one.copy(deep=True)
    early["prefix_matching"] = one["prefix_matching"] * 0 + 0.5
    stacked = xr.concat([early, one], dim="checkpoint").assign_coords(checkpoint=["early", "tiny"])
    e = head_explorer(stacked, cache=tiny.store)  # the last checkpoint: the store's own
    assert np.allclose(e.grid.data[0].z, one["prefix_matching"].values), "the last checkpoint is the default"
    assert e.source == "store", "the store's patterns belong to the checkpoint shown: they should be used"
    with pytest.raises(WidgetError, match="no checkpoint 'late'"):
        head_explorer(stacked, cache=tiny.store, checkpoint="late")
