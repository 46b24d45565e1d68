"""`tracking_explorer`: the dropdowns redraw one clip's masks beside the truth, and its scores."""

import numpy as np
import pytest

from toto_lens.analysis.tracking import COPY_FIRST, ORACLE, track
from toto_lens.figures.tracking import GAP, mask_strip
from toto_lens.widgets import WidgetError, tracking_explorer


def clip_masks(shift):
    """A 6-frame clip with one 8×8 object moving `shift` pixels a frame (32×32, 8×8 token grid)."""
    masks = np.zeros((6, 32, 32), dtype=np.uint8)
    for t in range(6):
        masks[t, 8:16, 4 + shift * t : 12 + shift * t] = 1
    return masks


@pytest.fixture
def result():
    masks = np.stack([clip_masks(0), clip_masks(3)])
    frames = np.random.default_rng(0).random(masks.shape).astype(np.float32)
    noise = np.random.default_rng(1).normal(size=(2, 6, 8, 8, 4))
    return track({"layer-1": lambda: noise}, masks, np.array([10, 11]), (8, 8), show=2, frames=frames)


def test_dropdowns_draw_the_chosen_predictor_under_the_truth(result):
    ex = tracking_explorer(result)
    assert ex.predictor.value == "layer-1"  # the best (only) layer first
    assert list(ex.clip.options) == [10, 11]
    ex.predictor.value, ex.clip.value = COPY_FIRST, 11
    z = np.asarray(ex.image.data[0].z)
    frames, true = result["frames"].values[1], result["true_masks"].values[1]
    top, bottom = mask_strip(frames, true), mask_strip(frames, np.repeat(true[:1], 6, axis=0))
    np.testing.assert_array_equal(z[: top.shape[0]], top.clip(0, 255).astype(np.uint8))
    np.testing.assert_array_equal(z[top.shape[0] + 3 * GAP :], bottom.clip(0, 255).astype(np.uint8))
    # the moving clip's copy-first J is below 1, and the info line says so with the clip's own numbers
    j = float(result["J_object"].sel(predictor=COPY_FIRST, clip=11, object=1))
    assert j < 1 and f"J {j:.2f}" in ex.info.value and "clip 11" in ex.info.value
    ex.clip.value = 10  # the still clip: copying the first frame is exact
    assert "J 1.00, F 1.00" in ex.info.value
    ex.predictor.value = ORACLE
    assert ex.image.layout.yaxis.ticktext == ("truth", ORACLE)


def test_a_result_without_kept_masks_is_refused(result):
    with pytest.raises(WidgetError, match="show ≥ 1"):
        tracking_explorer(result.isel(shown=slice(0, 0)))
    with pytest.raises(WidgetError, match="tracking"):
        tracking_explorer(result[["J"]])
