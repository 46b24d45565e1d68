"""Label propagation and the DAVIS 2017 J&F on hand-made masks and features with known answers."""

import math

import numpy as np
import pytest

from toto_lens.analysis import AnalysisError
from toto_lens.analysis.davis import boundary_map, f_measure, jaccard, statistics, tolerance
from toto_lens.analysis.tracking import (
    COPY_FIRST,
    ORACLE,
    Propagation,
    best_layer,
    pixel_features,
    propagate,
    token_labels,
    track,
    track_clip,
)

PATCH, GRID = 4, (8, 8)


def square(shape, top, left, size, value=1):
    m = np.zeros(shape, dtype=np.uint8)
    m[top : top + size, left : left + size] = value
    return m


def moving_clip(frames=6, step=PATCH):
    """Two 8×8-pixel objects on a 32×32 canvas, aligned to the 4-pixel token grid; object 1 moves right by
    `step` pixels a frame, object 2 stays."""
    masks = np.zeros((frames, 32, 32), dtype=np.uint8)
    for t in range(frames):
        masks[t] += square((32, 32), 4, t * step, 8, 1)
        masks[t] += square((32, 32), 20, 20, 8, 2)
    return masks


def banded_clip(frames=4):
    """Bands across the whole width, aligned to the token grid: object 1 (rows 4–11) moves down a token a
    frame, object 2 (rows 28–31) stays. No corners, so upsampling a perfect token labelling loses nothing."""
    masks = np.zeros((frames, 32, 32), dtype=np.uint8)
    for t in range(frames):
        masks[t, 4 + 4 * t : 12 + 4 * t] = 1
        masks[t, 28:32] = 2
    return masks


def perfect_features(masks):
    """Token features that say exactly which object a token is (one-hot over background, 1, 2)."""
    return np.stack([token_labels(m, np.array([1, 2]), GRID) for m in masks])  # (F, R, C, 3)


def test_a_mask_propagated_with_perfect_features_scores_one():
    masks = banded_clip()
    feats = perfect_features(masks)
    pred = track_clip(feats, masks, Propagation(radius=2))
    np.testing.assert_array_equal(pred, masks)  # pixel for pixel, every frame
    result = track({"perfect": lambda: feats[None]}, masks[None], np.array([0]), GRID)
    assert result["J"].sel(predictor="perfect") == 1 and result["F"].sel(predictor="perfect") == 1
    assert result["JF"].sel(predictor="perfect") == 1
    # Control: copying the first frame does not score 1 on the same clip (object 1 moves).
    assert result["J"].sel(predictor=COPY_FIRST) < 0.8


def test_perfect_features_lose_only_what_the_token_grid_loses():
    """On squares, bilinear upsampling rounds the corners: perfect features then predict exactly what the
    true token labels of every frame (the token-oracle) predict, pixel for pixel, and J < 1 for both."""
    masks = moving_clip()
    feats = perfect_features(masks)
    np.testing.assert_array_equal(track_clip(feats, masks), track_clip(ORACLE, masks, grid=GRID))
    result = track({"perfect": lambda: feats[None]}, masks[None], np.array([0]), GRID)
    assert result["JF"].sel(predictor="perfect") == result["JF"].sel(predictor=ORACLE) < 1


def test_copy_first_j_is_the_hand_computed_overlap():
    """Object 1 (8×8) moves 4 px a frame: in frame t it overlaps its first position by 8 − 4t columns."""
    masks = moving_clip(frames=4)
    result = track({}, masks[None], np.array([0]), GRID)
    j = result["J_object"].sel(predictor=COPY_FIRST).values[0]
    # scored frames 1 and 2: object 1 IoU (8−4t)·8 / ((8+4t)·8) = 1/3, 0; object 2 never moves: 1
    assert j[0] == pytest.approx((1 / 3 + 0) / 2) and j[1] == 1


def test_a_one_pixel_shift_gives_the_hand_computed_j():
    true = square((32, 32), 10, 10, 8)
    pred = square((32, 32), 10, 11, 8)  # one pixel right
    assert jaccard(pred, true) == pytest.approx(8 * 7 / (8 * 9))  # 56 shared of 72
    assert jaccard(np.zeros((4, 4)), np.zeros((4, 4))) == 1  # both empty
    assert jaccard(square((4, 4), 0, 0, 2), np.zeros((4, 4))) == 0


def test_boundary_map_is_the_one_pixel_ring_shifted_towards_the_origin():
    mask = square((4, 4), 1, 1, 2)
    ring = {(0, 0), (0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (2, 2)}
    assert {tuple(p) for p in np.argwhere(boundary_map(mask))} == ring


def test_f_tolerance_behaves_as_defined():
    assert tolerance((32, 32)) == 1  # ceil(0.008 × 45.25)
    assert tolerance((480, 854)) == 8  # DAVIS 480p
    assert tolerance((32, 32), bound_th=3) == 3  # ≥ 1: pixels
    true = square((32, 32), 10, 10, 10)
    assert f_measure(true, true) == 1
    assert f_measure(square((32, 32), 10, 11, 10), true) == 1  # one pixel off: within the 1-px tolerance
    off3 = f_measure(square((32, 32), 10, 13, 10), true)
    assert off3 < 0.8  # three pixels off: the vertical edges no longer match
    assert f_measure(square((32, 32), 10, 13, 10), true, bound_th=3) == 1  # unless the tolerance is 3 px
    empty = np.zeros((32, 32))
    assert f_measure(empty, empty) == 1 and f_measure(empty, true) == 0 and f_measure(true, empty) == 0


def test_statistics_mean_recall_and_decay():
    mean, recall, decay = statistics(np.array([1.0, 1.0, 0.4, 0.4, 0.0, 0.0]))
    assert mean == pytest.approx(2.8 / 6) and recall == pytest.approx(2 / 6)
    assert decay == pytest.approx(1.0)  # first bin (frames 0–1) 1.0, last bin (frames 4–5) 0.0
    assert math.isnan(statistics(np.array([]))[0])


def test_propagation_never_reads_future_frames():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(6, *GRID, 5))
    first = token_labels(moving_clip()[0], np.array([1, 2]), GRID)
    base = propagate(feats, first)
    for t in range(1, 6):
        changed = feats.copy()
        changed[t + 1 :] = rng.normal(size=changed[t + 1 :].shape)
        np.testing.assert_array_equal(propagate(changed, first)[: t + 1], base[: t + 1])
    # and the frame itself does matter (the test above would pass if nothing were read at all)
    changed = feats.copy()
    changed[3] = rng.normal(size=changed[3].shape)
    assert not np.allclose(propagate(changed, first)[3], base[3])


def test_previous_frames_count_only_within_the_radius():
    """Unit features at angles: frame 0 holds A (0°, label 1) at (0, 5) and B (60°, label 2) at (7, 7);
    frame 1's (0, 5) is A' (20°: it takes A's label); frame 2's (0, 0) is C (35°), closest to A' (15°),
    then B (25°). With radius 5, A' is in reach and C takes label 1; with radius 2 it is not, and C takes
    B's label from the first frame, which is reachable from anywhere."""

    def unit(degrees):
        return np.array([np.cos(np.radians(degrees)), np.sin(np.radians(degrees))])

    feats = np.tile(unit(180), (3, *GRID, 1))  # everything else points away
    feats[0, 0, 5], feats[0, 7, 7], feats[1, 0, 5], feats[2, 0, 0] = unit(0), unit(60), unit(20), unit(35)
    first = np.zeros((*GRID, 3))
    first[..., 0] = 1
    first[0, 5], first[7, 7] = [0, 1, 0], [0, 0, 1]
    near = propagate(feats, first, Propagation(topk=1, radius=2))
    far = propagate(feats, first, Propagation(topk=1, radius=5))
    np.testing.assert_allclose(near[1, 0, 5], [0, 1, 0])  # A' took A's label either way
    np.testing.assert_allclose(far[2, 0, 0], [0, 1, 0])
    np.testing.assert_allclose(near[2, 0, 0], [0, 0, 1])


def test_token_labels_are_area_fractions_and_pixels_are_centred_by_the_first_frame():
    mask = np.zeros((32, 32), dtype=np.uint8)
    mask[0:2, 0:4] = 1  # half of token (0, 0)
    mask[4:8, 0:4] = 3  # an object not tracked counts as background
    labels = token_labels(mask, np.array([1]), GRID)
    np.testing.assert_allclose(labels[0, 0], [0.5, 0.5])
    np.testing.assert_allclose(labels[1, 0], [1.0, 0.0])
    frames = np.random.default_rng(1).random((3, 32, 32))
    feats = pixel_features(frames, GRID)
    assert feats.shape == (3, 8, 8, 16)
    np.testing.assert_allclose(feats[0].mean(axis=(0, 1)), 0, atol=1e-12)
    np.testing.assert_allclose(
        feats[1, 0, 0], frames[1, :4, :4].ravel() - frames[0].reshape(8, 4, 8, 4).mean((0, 2)).ravel()
    )


def test_bad_settings_and_inputs_are_refused():
    with pytest.raises(AnalysisError, match="topk ≥ 1"):
        Propagation(topk=0)
    with pytest.raises(AnalysisError, match="no frame to score"):
        track({}, moving_clip(frames=2)[None], np.array([0]), GRID)
    with pytest.raises(AnalysisError, match="nothing to track"):
        track({}, np.zeros((1, 5, 32, 32), np.uint8), np.array([0]), GRID)
    feats = perfect_features(moving_clip())[None]
    with pytest.raises(AnalysisError, match="do not match"):
        track({"x": lambda: feats[:, :, :4]}, moving_clip()[None], np.array([0]), GRID)


def test_best_layer_is_the_highest_jf_layer_not_a_baseline():
    masks = moving_clip()[None]
    feats = perfect_features(masks[0])[None]
    noise = np.random.default_rng(0).normal(size=feats.shape)
    result = track({"layer-0": lambda: noise, "layer-3": lambda: feats}, masks, np.array([0]), GRID)
    assert best_layer(result) == "layer-3"
    assert list(result["predictor_layer"].values) == [0, 3, -1, -1]


def test_f_measure_of_a_stack_equals_each_pair_on_its_own():
    """The boundary dilation runs over a whole stack at once: one mask's boundary must never reach into
    its neighbour in the stack (a footprint across frames would)."""
    rng = np.random.default_rng(3)
    pred = rng.random((6, 32, 32)) > 0.7
    true = np.roll(pred, 1, axis=0) | (rng.random((6, 32, 32)) > 0.9)
    pred[2] = False  # an empty prediction among them
    stacked = f_measure(pred, true)
    assert stacked.shape == (6,)
    np.testing.assert_allclose(stacked, [f_measure(p, t) for p, t in zip(pred, true, strict=True)])
    assert stacked[2] == 0
