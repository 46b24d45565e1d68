"""What `make demo` trains must learn, on our own data, what the Toto appendix reports (Fig. 10)."""

import pytest


@pytest.mark.slow
def test_default_model_beats_unigram_and_finds_video_redundancy(demo_run):
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
