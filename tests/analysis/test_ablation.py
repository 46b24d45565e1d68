"""`analysis.ablation` and the head-spec / random-head helpers of `run.ablation`, on hand-made inputs."""

import numpy as np
import pytest

from toto_lens.analysis import AnalysisError
from toto_lens.analysis.ablation import ablation_result, advantage, frame_loss
from toto_lens.run.ablation import HeadSpecError, parse_heads, random_heads

# start, 2 frames of 3 tokens, end: losses are about positions 1 … 7 (tokens 1 … 7)
POS_FRAME = np.array([-1, 0, 0, 0, 1, 1, 1, -1])


def test_frame_loss_averages_each_frame_and_leaves_out_the_end_token():
    losses = np.array([[3.0, 3.0, 3.0, 1.0, 1.0, 1.0, 99.0], [5.0, 5.0, 5.0, 3.0, 3.0, 3.0, 99.0]])
    frames, per_frame = frame_loss(losses, POS_FRAME)
    assert list(frames) == [0, 1]
    np.testing.assert_allclose(per_frame, [4.0, 2.0])
    assert float(advantage(per_frame)) == pytest.approx(2.0)
    with pytest.raises(AnalysisError, match="per-token losses"):
        frame_loss(losses[:, :-1], POS_FRAME)


def test_the_result_reads_the_chosen_heads_against_the_random_draws():
    intact = np.tile([3.0, 3.0, 3.0, 1.0, 1.0, 1.0, 0.0], (2, 1))
    ablated = intact + np.array([0, 0, 0, 2.0, 2.0, 2.0, 0])  # only the later frame got worse
    random = np.stack([intact + 0.5, intact])  # a draw that shifts everything, and one that does nothing
    r = ablation_result(
        intact, ablated, random, POS_FRAME, [(1, 0), (2, 1)], [[(1, 1), (2, 0)], [(1, 2), (2, 2)]]
    )
    assert float(r["delta_later_ablated"]) == pytest.approx(2.0)
    np.testing.assert_allclose(r["delta_later_random"].values, [0.5, 0.0])
    assert float(r["advantage_intact"]) == pytest.approx(3.0) and float(
        r["advantage_ablated"]
    ) == pytest.approx(1.0)
    assert r.attrs["heads"] == "1.0,2.1" and r["random_layer"].dims == ("draw", "ablated")
    with pytest.raises(AnalysisError, match="as many"):
        ablation_result(intact, ablated, random[:1], POS_FRAME, [(1, 0)], [[(1, 1), (2, 0)]])


def test_head_specs_parse_and_a_head_that_does_not_exist_names_the_valid_range():
    assert parse_heads("top:prev_frame:4", 2, 4) == ("previous_frame", 4)
    assert parse_heads("top:frame_induction:2", 2, 4) == ("frame_induction", 2)
    assert parse_heads("1.2, 2.0,1.2", 2, 4) == [(1, 2), (2, 0)]
    for bad, message in (("3.0", "layers 1 … 2, heads 0 … 3"), ("1.4", "does not exist"), ("0.1", "layers 1"),
                         ("top:nope:2", "score one of"), ("top:prev_frame:9", "k must be 1 … 8"), ("x", "layer.head")):  # fmt: skip
        with pytest.raises(HeadSpecError, match=message) as e:
            parse_heads(bad, 2, 4)
        assert "\n" not in str(e.value)


def test_random_heads_never_include_the_chosen_ones_and_differ_between_draws():
    chosen = [(1, 0), (2, 3)]
    draws = random_heads(3, 4, chosen, 2, 5, seed=1)
    assert len(draws) == 5 and all(len(d) == 2 and len(set(d)) == 2 for d in draws)
    assert not any(h in chosen for d in draws for h in d)
    assert len({tuple(d) for d in draws}) == 5, "each draw differs from the others"
    assert draws == random_heads(3, 4, chosen, 2, 5, seed=1) and draws != random_heads(
        3, 4, chosen, 2, 5, seed=2
    )
    with pytest.raises(HeadSpecError, match="only 1 other"):
        random_heads(1, 2, [(1, 0)], 2, 1)
