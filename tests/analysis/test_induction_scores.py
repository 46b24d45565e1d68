import numpy as np
import pytest
import xarray as xr

from toto_lens.analysis import AnalysisError
from toto_lens.analysis.induction import (
    SCORES,
    induction_detector_score,
    induction_mask,
    prefix_matching_score,
    prefix_matching_targets,
    previous_frame_score,
    previous_row_score,
    repeated_clip_period,
    stack_checkpoints,
)
from toto_lens.data.layout import Layout
from toto_lens.figures import FigureError
from toto_lens.figures.induction import induction_emergence_figure, induction_heatmap_figure


def uniform_causal(T: int, heads: int = 1) -> np.ndarray:
    """A[i, j] = 1 / (i + 1) for j ≤ i: every query spreads evenly over what it may see."""
    return np.broadcast_to(np.tril(np.ones((T, T))) / np.arange(1, T + 1)[:, None], (heads, T, T)).copy()


def pointing(T: int, targets: dict[int, int]) -> np.ndarray:
    """One-hot rows: query q attends to targets[q], every other query to itself."""
    a = np.eye(T)
    for q, k in targets.items():
        a[q] = 0
        a[q, k] = 1
    return a


def test_prefix_matching_is_one_on_the_induction_target_and_zero_one_token_off():
    n = 5
    T = 2 * n + 1
    second = range(n + 1, 2 * n + 1)
    induction = pointing(T, {i: i - n + 1 for i in second})  # the token after the previous occurrence
    duplicate = pointing(T, {i: i - n for i in second})  # the previous occurrence itself
    scores = prefix_matching_score(np.stack([induction, duplicate, np.eye(T)]), n)
    np.testing.assert_allclose(scores, [1.0, 0.0, 0.0], err_msg="wrong diagonal offset for [start; r; r]")


def test_prefix_matching_of_a_uniform_causal_pattern_is_the_analytic_mean():
    n = 7
    expected = np.mean([1 / (i + 1) for i in range(n + 1, 2 * n + 1)])
    got = prefix_matching_score(uniform_causal(2 * n + 1, heads=3)[None], n)  # (batch 1, heads 3)
    assert got.shape == (1, 3), "leading dims (batch, head) should be kept"
    np.testing.assert_allclose(got, expected, err_msg="only the n second-copy queries should count")


def test_prefix_matching_refuses_a_pattern_of_the_wrong_length():
    with pytest.raises(AnalysisError, match="T = 11"):
        prefix_matching_score(np.eye(12), 5)
    with pytest.raises(AnalysisError, match="n ≥ 2"):
        prefix_matching_targets(1)


def test_previous_frame_and_row_offsets_on_exact_and_uniform_patterns():
    layout = Layout(3, 2, 3)  # 6 tokens per frame, length 20
    T = layout.length
    f, r = layout.frame_of_position, layout.row_of_position
    frame_q = [q for q in range(T) if f[q] >= 1]
    row_q = [q for q in range(T) if r[q] >= 1]
    exact_frame = pointing(T, {q: q - 6 for q in frame_q})
    exact_row = pointing(T, {q: q - 3 for q in row_q})
    assert previous_frame_score(exact_frame, layout) == pytest.approx(1.0), "offset should be −R·C"
    assert previous_row_score(exact_row, layout) == pytest.approx(1.0), "offset should be −C"
    assert previous_frame_score(exact_row, layout) == pytest.approx(0.0), "a row head is no frame head"
    uniform = uniform_causal(T)
    assert previous_frame_score(uniform, layout)[0] == pytest.approx(np.mean([1 / (q + 1) for q in frame_q]))
    assert previous_row_score(uniform, layout)[0] == pytest.approx(np.mean([1 / (q + 1) for q in row_q]))
    # A pattern cut by the context keeps only the queries it holds.
    cut = previous_frame_score(uniform[:, :12, :12], layout)[0]
    assert cut == pytest.approx(np.mean([1 / (q + 1) for q in frame_q if q < 12]))


def test_detector_form_agrees_with_the_prefix_targets_on_distinct_tokens():
    n = 6
    tokens = np.concatenate([[1], np.arange(10, 10 + n), np.arange(10, 10 + n)])
    rows, cols = np.nonzero(induction_mask(tokens))
    q, k = prefix_matching_targets(n)
    assert set(zip(rows, cols, strict=True)) == set(zip(q, k, strict=True)), "mask and targets disagree"
    exact = pointing(2 * n + 1, dict(zip(q, k, strict=True)))
    # Σ A·M / Σ A: n rows hit their target, and all 2n + 1 rows sum to one.
    assert induction_detector_score(exact[None], tokens)[0] == pytest.approx(n / (2 * n + 1))


def test_repeated_clip_keeps_whole_frames_that_fit_twice():
    layout = Layout(4, 2, 3)  # 6 tokens per frame
    assert repeated_clip_period(layout, 64) == (4, 24), "the whole clip fits twice in 49 tokens"
    assert repeated_clip_period(layout, 30) == (2, 12), "2·2·6 + 1 = 25 ≤ 30 < 2·3·6 + 1"
    assert repeated_clip_period(layout, 10) == (0, 4), "not one frame fits twice: a partial frame"


def fake_scores(value_at: tuple[int, int], name: str, step: int) -> xr.Dataset:
    layers, heads = np.arange(1, 4), np.arange(4)
    data = {k: (("layer", "head"), np.full((3, 4), 0.1)) for k in SCORES}
    data["prefix_matching"][1][value_at] = 0.9
    data["first_copy_loss"], data["second_copy_loss"] = ((), 3.0), ((), 1.0)
    return xr.Dataset(data, coords={"layer": layers, "head": heads}, attrs={"checkpoint": name, "step": step})


def test_heatmap_marks_heads_above_threshold_and_emergence_needs_checkpoints():
    one = fake_scores((1, 2), "a", 5)
    fig = induction_heatmap_figure(one)
    marks = [t for t in fig.data if t.type == "scatter" and len(t.x)]
    assert len(marks) == 1 and list(marks[0].x) == [2] and list(marks[0].y) == [2], "head 2 of layer 2 > 0.4"
    with pytest.raises(FigureError, match="several checkpoints"):
        induction_emergence_figure(one)
    stacked = stack_checkpoints([one, fake_scores((0, 0), "b", 50)])
    emergence = induction_emergence_figure(stacked)
    best = next(t for t in emergence.data if t.name.startswith("induction (random"))
    assert list(best.x) == [5, 50] and best.y[0] == pytest.approx(0.9), "x should be the training step"
    assert induction_heatmap_figure(stacked, checkpoint="b").layout.title.text.startswith("Head scores of b")


def test_frame_induction_targets_are_the_previous_frame_copy_source():
    """The query predicting (f, r, c) sits at t − 1 and must look at (f − 1, r, c): offset −(R·C − 1)."""
    from toto_lens.analysis.induction import frame_induction_targets

    layout = Layout(3, 2, 2)
    q, k = frame_induction_targets(layout)
    t = q + 1
    assert [layout.locate(int(p)) for p in t[:2]] == [(1, 0, 0), (1, 0, 1)]
    assert [layout.locate(int(p)) for p in k[:2]] == [(0, 0, 0), (0, 0, 1)], "keys must be one frame earlier"
    assert np.all(q - k == layout.tokens_per_frame - 1)


def test_a_fixed_offset_head_scores_as_induction_only_at_a_confounded_length_and_not_once_controlled():
    """A head that reads one frame back (offset −p) is no induction head, yet at n = p + 1 its target
    offset −(n − 1) is −p: the raw score is high, and so is the same score on [start; r; r′]."""
    from toto_lens.analysis.induction import confounded_length, default_repeat_length

    p = 8  # tokens a frame
    n = p + 1
    T = 2 * n + 1
    fixed = pointing(T, {q: q - p for q in range(p, T)})  # content-blind: the same on r; r and on r; r′
    raw, control = prefix_matching_score(fixed, n), prefix_matching_score(fixed, n)
    assert raw == pytest.approx(1.0), "at n = p + 1 a previous-frame head hits every prefix-matching target"
    assert raw - control == pytest.approx(0.0), "the controlled score must see through it"
    assert confounded_length(n, p) and confounded_length(p, p) and confounded_length(2 * p - 1, p)
    # Induction reads content: on [start; r; r] it hits the targets, on [start; r; r′] r′ has no earlier
    # copy, so it falls back on the token itself.
    q, k = prefix_matching_targets(n)
    induction = pointing(T, dict(zip(q, k, strict=True)))
    on_control = np.eye(T)
    raw, control = prefix_matching_score(induction, n), prefix_matching_score(on_control, n)
    assert raw == pytest.approx(1.0) and raw - control == pytest.approx(1.0)
    # The default length keeps the fixed-offset head away from the targets.
    good = default_repeat_length(p, max_n=100)
    assert good == 12 and not confounded_length(good, p), "1.5 frames: n mod p = p / 2"
    T = 2 * good + 1
    fixed = pointing(T, {q_: q_ - p for q_ in range(p, T)})
    assert prefix_matching_score(fixed, good) == pytest.approx(0.0)
    assert default_repeat_length(64, 512) == 96, "the demo's 8 × 8 frames"
    assert not confounded_length(default_repeat_length(64, 40), 64), "a short context keeps away too"
