import math

import numpy as np
import pytest

from toto_lens.analysis import AnalysisError
from toto_lens.analysis.generation import (
    PSNR_CAP_DB,
    copy_last_frames,
    frame_quality,
    frechet_distance,
    ngram_divergence,
)


def smooth_frames(rng, clips=2, frames=3, size=32, channels=None) -> np.ndarray:
    """Low-frequency images in [0.2, 0.8], so that a ±0.1 error stays inside [0, 1] (no clipping)."""
    y, x = np.meshgrid(np.linspace(0, 1, size), np.linspace(0, 1, size), indexing="ij")
    phase = rng.uniform(0, 2 * np.pi, (clips, frames, 1, 1))
    img = 0.5 + 0.3 * np.sin(2 * np.pi * (x + y)[None, None] + phase)
    return np.repeat(img[..., None], channels, axis=-1) if channels else img


# -- frame_quality ---------------------------------------------------------------------------------


def test_psnr_of_a_constant_error_is_hand_computed():
    # Every pixel off by 0.1: MSE = 0.01, PSNR = 10 log10(1 / 0.01) = 20 dB. A wrong data_range or a
    # per-clip instead of per-frame mean would move it.
    truth = smooth_frames(np.random.default_rng(0))
    q = frame_quality(truth + 0.1, truth, data_range=1.0)
    assert q["psnr"].dims == ("clip", "frame") and q["psnr"].shape == (2, 3)
    np.testing.assert_allclose(q["psnr"].values, 20.0, atol=1e-9)
    # data_range 255 on frames scaled by 255: the same ratio, the same 20 dB.
    q255 = frame_quality(255 * (truth + 0.1), 255 * truth, data_range=255.0)
    np.testing.assert_allclose(q255["psnr"].values, 20.0, atol=1e-9)


def test_psnr_is_per_frame():
    truth = smooth_frames(np.random.default_rng(1), clips=1, frames=2)
    gen = truth.copy()
    gen[0, 1] += 0.01  # MSE 1e-4 on frame 1 only: 40 dB there, frame 0 identical
    q = frame_quality(gen, truth)
    assert q["psnr"].values[0, 1] == pytest.approx(40.0)
    assert q["psnr"].values[0, 0] == PSNR_CAP_DB


def test_identical_frames_report_the_documented_cap():
    truth = smooth_frames(np.random.default_rng(2))
    q = frame_quality(truth, truth)
    assert np.isfinite(q["psnr"].values).all(), "identical frames must not give +inf (the cap is documented)"
    np.testing.assert_array_equal(q["psnr"].values, PSNR_CAP_DB)
    assert q["identical"].values.all()
    assert q.attrs["psnr_cap_db"] == PSNR_CAP_DB
    np.testing.assert_allclose(q["ssim"].values, 1.0)


def test_ssim_of_noise_is_far_below_one():
    rng = np.random.default_rng(3)
    truth = smooth_frames(rng)
    noise = rng.uniform(0, 1, truth.shape)
    q = frame_quality(noise, truth)
    assert (q["ssim"].values < 0.3).all()
    assert not q["identical"].values.any()
    assert q.attrs["ssim_win_size"] == 7


def test_colour_frames_and_small_frames():
    rng = np.random.default_rng(4)
    truth = smooth_frames(rng, size=32, channels=3)
    q = frame_quality(truth + 0.1, truth)
    np.testing.assert_allclose(q["psnr"].values, 20.0, atol=1e-9)
    assert q["ssim"].shape == (2, 3)  # the colour axis is not taken for a spatial one
    small = smooth_frames(rng, size=6)
    assert frame_quality(small, small).attrs["ssim_win_size"] == 5  # largest odd side <= 6
    with pytest.raises(AnalysisError, match="3 pixels"):
        frame_quality(np.zeros((1, 1, 2, 8)), np.zeros((1, 1, 2, 8)))


def test_frame_quality_refuses_bad_input():
    truth = smooth_frames(np.random.default_rng(5))
    with pytest.raises(AnalysisError, match="same shape"):
        frame_quality(truth[:, :2], truth)
    with pytest.raises(AnalysisError, match=r"\[0, 1"):
        frame_quality(truth * 255, truth)  # frames in [0, 255] with data_range 1
    with pytest.raises(AnalysisError, match="clip, frame"):
        frame_quality(truth[0], truth[0])


# -- copy_last_frames ------------------------------------------------------------------------------


def test_copy_last_repeats_the_last_prompt_frame():
    prompt = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    out = copy_last_frames(prompt, 4)
    assert out.shape == (2, 4, 4, 5) and out.dtype == np.float32
    for c in range(2):
        for f in range(4):
            np.testing.assert_array_equal(out[c, f], prompt[c, -1])  # the last frame, not the first
    colour = copy_last_frames(np.random.default_rng(0).uniform(size=(1, 2, 4, 4, 3)), 2)
    assert colour.shape == (1, 2, 4, 4, 3)
    out[0, 0, 0, 0] = -1  # a new array: writing to it leaves the prompt alone
    assert prompt[0, -1, 0, 0] != -1
    with pytest.raises(AnalysisError):
        copy_last_frames(prompt, 0)
    with pytest.raises(AnalysisError):
        copy_last_frames(prompt[:, :0], 2)


# -- ngram_divergence ------------------------------------------------------------------------------


def test_js_of_a_distribution_with_itself_is_zero():
    codes = np.random.default_rng(0).integers(0, 16, (5, 3 * 4 * 4))
    assert ngram_divergence(codes, codes, (4, 4), n=1) == 0.0
    assert ngram_divergence(codes, codes, (4, 4), n=2) == 0.0
    # Same distribution, different sample size: still 0 (relative counts, not raw counts).
    assert ngram_divergence(np.tile(codes, (2, 1)), codes, (4, 4), n=2) == pytest.approx(0.0, abs=1e-12)


def test_js_of_disjoint_codes_is_one_bit_and_symmetric():
    a = np.random.default_rng(1).integers(0, 8, (3, 2 * 4))
    b = a + 8  # no code in common
    assert ngram_divergence(a, b, (2, 2), n=1) == pytest.approx(1.0)  # bits: log base 2
    assert ngram_divergence(a, b, (2, 2), n=2) == pytest.approx(1.0)
    rng = np.random.default_rng(2)
    x, y = rng.integers(0, 4, (4, 8)), rng.integers(0, 6, (3, 8))
    assert ngram_divergence(x, y, (2, 2)) == pytest.approx(ngram_divergence(y, x, (2, 2)))


def test_js_hand_computed():
    # Unigrams p = (3/4, 1/4), q = (1/4, 3/4): m = (1/2, 1/2), JS = H(m) - (H(p) + H(q)) / 2 = 1 - H(1/4).
    p = np.array([[0, 0, 0, 1]])
    q = np.array([[1, 1, 1, 0]])
    h = -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))
    assert ngram_divergence(p, q, (2, 2), n=1) == pytest.approx(1 - h)
    assert 1 - h == pytest.approx(0.188722, abs=1e-6)


def test_bigrams_stay_inside_a_frame_in_row_major_order():
    # grid 1x2, two frames per sequence: [0 1 | 0 1]. Within frames the bigrams are (0,1), (0,1), as in
    # the reference of two one-frame sequences; a count that ran across the frame boundary would add
    # (1,0) to the generated side only, and the divergence would be positive.
    assert ngram_divergence(np.array([[0, 1, 0, 1]]), np.array([[0, 1], [0, 1]]), (1, 2), n=2) == 0.0
    # Row-major within a frame: in a 2x2 frame [[0,1],[2,3]] the pairs are (0,1), (1,2), (2,3); the wrap
    # from row 0 to row 1 counts, the step to the next frame (3 -> 0) does not.
    two_frames = np.array([[0, 1, 2, 3, 0, 1, 2, 3]])
    assert ngram_divergence(two_frames, np.array([[0, 1, 2, 3]]), (2, 2), n=2) == 0.0
    # The same frame read column by column gives (0,2), (2,1), (1,3): no pair in common, 1 bit.
    assert ngram_divergence(two_frames, np.array([[0, 2, 1, 3]]), (2, 2), n=2) == pytest.approx(1.0)
    # Control: with n=1 the order does not matter, so the two readings agree.
    assert ngram_divergence(two_frames, np.array([[0, 2, 1, 3]]), (2, 2), n=1) == 0.0


def test_ngram_divergence_refuses_bad_codes():
    with pytest.raises(AnalysisError, match="sequences"):
        ngram_divergence(np.zeros((2, 5), dtype=int), np.zeros((2, 4), dtype=int), (2, 2))
    with pytest.raises(AnalysisError, match="integer"):
        ngram_divergence(np.zeros((2, 4)), np.zeros((2, 4), dtype=int), (2, 2))
    with pytest.raises(AnalysisError):
        ngram_divergence(np.full((1, 4), -1), np.zeros((1, 4), dtype=int), (2, 2))


# -- frechet_distance ------------------------------------------------------------------------------


def test_frechet_of_a_set_with_itself_is_zero():
    a = np.random.default_rng(0).normal(size=(200, 6))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def test_frechet_of_a_mean_shift_is_its_squared_norm():
    a = np.random.default_rng(1).normal(size=(300, 4)) @ np.diag([1.0, 2.0, 0.5, 3.0])
    delta = np.array([1.0, -2.0, 0.5, 3.0])
    assert frechet_distance(a, a + delta) == pytest.approx(delta @ delta, rel=1e-6)
    assert frechet_distance(a + delta, a) == pytest.approx(delta @ delta, rel=1e-6)


def test_frechet_of_known_gaussians_matches_the_closed_form():
    # N(0, diag(1, 1, 1)) against N(mu, diag(4, 9, 1)): ||mu||^2 + sum (sigma_a - sigma_b)^2 = 2 + (1 + 4 + 0).
    rng = np.random.default_rng(2)
    a = rng.normal(size=(40_000, 3))
    b = rng.normal(size=(40_000, 3)) * np.array([2.0, 3.0, 1.0]) + np.array([1.0, 1.0, 0.0])
    assert frechet_distance(a, b) == pytest.approx(7.0, rel=0.02)


def test_frechet_with_a_singular_covariance_stays_finite():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(3, 8))  # n < d: rank-deficient covariance, ridge added
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    b = np.column_stack([rng.normal(size=50), np.zeros(50)])  # a constant feature
    assert np.isfinite(frechet_distance(b, b + 1.0))
    assert frechet_distance(b, b + 1.0) == pytest.approx(2.0, rel=1e-4)


def test_frechet_refuses_fewer_than_two_samples():
    a = np.zeros((1, 4))
    with pytest.raises(AnalysisError, match="n >= 2"):
        frechet_distance(a, np.ones((5, 4)))
    with pytest.raises(AnalysisError, match="n >= 2"):
        frechet_distance(np.ones((5, 4)), a)
    with pytest.raises(AnalysisError, match="width"):
        frechet_distance(np.ones((5, 4)), np.ones((5, 3)))
