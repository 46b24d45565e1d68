"""`analysis.lens`: KL(final ‖ layer) and top-1 agreement per layer and per predicted frame."""

import numpy as np
import pytest
import torch

from toto_lens.analysis import AnalysisError
from toto_lens.analysis.lens import lens_from_logits, logit_lens, predicted_frame, token_divergence

RNG = np.random.default_rng(0)


def _final(clips=3, positions=9, vocab=20):
    return RNG.normal(scale=3.0, size=(clips, positions, vocab))


def test_the_final_layer_against_itself_has_kl_zero_and_full_agreement():
    final = _final()
    frame = np.array([0, 0, 0, 1, 1, 1, 2, 2, -1])
    result = lens_from_logits(np.stack([final, final + 5.0]), final, frame)  # a shift leaves softmax alone
    np.testing.assert_allclose(result["kl"].values, 0.0, atol=1e-9, err_msg="a copy of the final is KL 0")
    np.testing.assert_array_equal(result["agreement"].values, 1.0)
    assert result["kl_mean"].dims == ("layer",) and result["kl"].dims == ("layer", "frame")


def test_a_layer_of_random_logits_is_far_from_the_final_one():
    final = _final(clips=4, positions=64, vocab=50)
    noise = RNG.normal(scale=3.0, size=final.shape)
    result = lens_from_logits(np.stack([noise, final]), final, np.zeros(64, int))
    kl, agree = result["kl_mean"].values, result["agreement_mean"].values
    assert kl[0] > 2.0 and kl[1] < 1e-9, f"random logits should be several nats away: {kl}"
    assert agree[0] < 0.1 and agree[1] == 1.0, f"random top-1 should agree about 1/50 of the time: {agree}"


def test_tokens_are_grouped_by_the_frame_they_predict():
    # 2 layers, 1 clip, 6 positions; position t predicts frame frame[t]; position 5 is left out (-1).
    kl = np.array([[[1.0, 2.0, 3.0, 4.0, 5.0, 100.0]], [[0.0, 0.0, 6.0, 6.0, 6.0, 100.0]]])
    frame = np.array([0, 0, 1, 1, 1, -1])
    result = logit_lens(kl, (kl > 3).astype(float), frame, layer=[0, 4])
    np.testing.assert_allclose(result["kl"].sel(layer=0).values, [1.5, 4.0])
    np.testing.assert_allclose(result["kl"].sel(layer=4).values, [0.0, 6.0])
    np.testing.assert_allclose(result["kl_mean"].values, [3.0, 3.6], err_msg="a left-out position counts")
    np.testing.assert_allclose(result["agreement"].sel(layer=0).values, [0.0, 2 / 3])
    assert list(result["frame"].values) == [0, 1] and list(result["tokens"].values) == [2, 3]
    assert result.attrs["final_layer"] == 4


def test_the_predicted_frame_is_the_next_positions_frame():
    # start token, two frames of two tokens, end token
    np.testing.assert_array_equal(predicted_frame([-1, 0, 0, 1, 1, -1]), [0, 0, 1, 1, -1, -1])


def test_torch_and_numpy_give_the_same_numbers():
    a, b = _final(), _final()
    kl_np, agree_np = token_divergence(a, b)
    kl_t, agree_t = token_divergence(torch.tensor(a), torch.tensor(b))
    assert isinstance(kl_t, torch.Tensor)
    np.testing.assert_allclose(kl_t.numpy(), kl_np, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(agree_t.numpy(), agree_np)
    assert (kl_np > 0).all(), "two different random distributions are never KL 0"


def test_kl_is_the_direction_final_to_layer():
    # final puts its mass on token 0; the layer is spread out: KL(p ‖ q) = log 3 ≈ 1.0986 for p one-hot.
    final = np.array([[[50.0, 0.0, 0.0]]])
    layer = np.zeros((1, 1, 3))
    kl, agree = token_divergence(layer, final)
    np.testing.assert_allclose(kl, np.log(3), rtol=1e-6, err_msg="KL(final ‖ layer), not the reverse")


def test_the_control_is_averaged_per_frame_and_a_missing_one_is_nan():
    kl = np.zeros((1, 2, 3))
    control = np.array([[1.0, 2.0, 3.0], [np.nan, np.nan, np.nan]])
    result = logit_lens(kl, kl, [0, 1, -1], control_kl=control, control_agreement=control * 0)
    np.testing.assert_allclose(result["control_kl"].values, [1.0, 2.0])
    assert result.attrs["control_kl_mean"] == pytest.approx(1.5)
    alone = logit_lens(
        kl, kl, [0, 1, -1], control_kl=control[1:] * np.ones((2, 1)), control_agreement=control * 0
    )
    assert np.isnan(alone.attrs["control_kl_mean"]), "no clip pair: the control is unknown, not 0"


def test_mismatched_shapes_and_no_visual_frame_are_one_line_errors():
    with pytest.raises(AnalysisError, match="differ in shape"):
        token_divergence(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(AnalysisError, match="position"):
        logit_lens(np.zeros((1, 1, 3)), np.zeros((1, 1, 3)), [0, 1])
    with pytest.raises(AnalysisError, match="no position predicts"):
        logit_lens(np.zeros((1, 1, 2)), np.zeros((1, 1, 2)), [-1, -1])
