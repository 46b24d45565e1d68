"""What the analyses must show on the model `make demo` trains (appendix Fig. 9, Fig. 10 and A.3).

The numbers are whatever the demo model gives; these tests pin the findings that hold for it, so that a
change which breaks extraction, a probe or a score shows up as a lost finding.

Digit classification is asserted on single images (`frame_digit` on the image-digits cache, the paper's
ImageNet probe), not on the video clips' `digit`: a moving-digits clip shows two digits composited alike,
and its `digit` label names the first, which nothing in the pixels singles out (see the README).
"""

import numpy as np
import pytest

from toto_lens import load_checkpoint, open_cache
from toto_lens.analysis.probing import best_layer, probe_layers, summarise
from toto_lens.analysis.redundancy import redundancy
from toto_lens.run.induction import induction_scores


@pytest.mark.slow
def test_probing_curves_find_motion_far_above_chance(demo_run):
    _, store = demo_run
    ds = open_cache(path=store)
    result = probe_layers(ds, tasks=("digit", "motion"), probes=("linear", "attention"), seeds=(0, 1, 2))
    summary = summarise(result)
    for probe in ("linear", "attention"):
        layer = best_layer(result, "motion", probe)
        acc = float(summary["val_mean"].sel(task="motion", probe=probe, layer=layer))
        chance = float(result["chance"].sel(task="motion"))
        assert acc >= 2.5 * chance, (
            f"motion, {probe} probe: best layer {layer} reaches {acc:.3f}, chance {chance:.3f}"
        )
        first = float(summary["val_mean"].sel(task="motion", probe=probe, layer=0))
        assert acc > first + 0.15, (
            f"{probe}: the blocks must add motion information over the embeddings ({first:.3f})"
        )
    assert np.isfinite(result["val_score"].sel(task="digit").values).all(), (
        "every digit curve point is scored"
    )


@pytest.mark.slow
def test_image_classification_probes_find_the_digit_far_above_chance(demo_images):
    ds = open_cache(path=demo_images)
    result = probe_layers(ds, tasks=("frame_digit",), probes=("linear", "attention"), seeds=(0, 1, 2))
    summary = summarise(result)
    chance = float(result["chance"].sel(task="frame_digit"))
    # Not asserted: that the blocks add to the embeddings. The mean of a frame's token embeddings (a bag
    # of visual words) already reaches ~0.31, and the demo model's last block only a few points more.
    for probe in ("linear", "attention"):
        layer = best_layer(result, "frame_digit", probe)
        acc = float(summary["val_mean"].sel(task="frame_digit", probe=probe, layer=layer))
        assert acc >= 2.5 * chance, (
            f"frame_digit, {probe}: best layer {layer} reaches {acc:.3f}, chance {chance:.3f}"
        )


@pytest.mark.slow
def test_first_frame_costs_twice_the_later_ones_and_the_copy_baseline_is_drawn(demo_run):
    _, store = demo_run
    result = redundancy(open_cache(path=store))
    assert result.attrs["first_to_later_ratio"] >= 2.0, result.attrs
    copy = result["frame_predictor_loss"].sel(predictor="copy")
    assert np.isnan(copy.sel(frame=0)) and np.isfinite(copy.sel(frame=slice(1, None))).all()
    later = result["frame_predictor_loss"].sel(frame=slice(1, None)).mean("frame")
    assert later.sel(predictor="model") < later.sel(predictor="unigram"), (
        "the model must beat context-free coding"
    )


@pytest.mark.slow
def test_induction_scores_show_heads_copying_from_the_previous_frame(demo_run):
    result, store = demo_run
    scores = induction_scores(load_checkpoint(result.path), clips_tokens=open_cache(path=store).tokens)
    for name in ("prefix_matching", "frame_induction", "previous_frame", "previous_row"):
        values = scores[name].values
        assert values.shape == (4, 4) and ((values >= 0) & (values <= 1)).all(), name
    # the video form of induction: some head looks at where the next token sat one frame earlier
    assert float(scores["frame_induction"].max()) >= 0.2, scores["frame_induction"].values
    assert float(scores["frame_induction"].max()) > float(scores["previous_frame"].max())


@pytest.mark.slow
def test_default_model_beats_unigram_and_finds_video_redundancy(demo_run):
    """What `make demo` trains must learn, on our own data, what the Toto appendix reports (Fig. 10)."""
    result, _ = demo_run  # exactly the defaults `toto-lens train --name demo` uses
    m = result.metrics
    assert result.complete
    # A context-free model pays the unigram entropy; ours must use context for far less.
    assert m["val_loss_visual"] < 0.7 * m["unigram_entropy"], (m["val_loss_visual"], m["unigram_entropy"])
    video = m["by_source"]["moving-digits"]
    assert video["first_to_later_ratio"] >= 2.0, (
        f"first frame {video['first_frame_loss']:.3f} vs later {video['later_frames_loss']:.3f}"
    )
    # Independent images carry no redundancy: there the first frame is not special.
    images = m["by_source"]["image-digits"]
    assert images["first_to_later_ratio"] < 1.3
