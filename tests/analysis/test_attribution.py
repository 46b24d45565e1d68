"""`analysis.attribution`: attribution mass per earlier frame and per place, beside its controls."""

import numpy as np
import pytest

from toto_lens.analysis import AnalysisError
from toto_lens.analysis.attribution import attribution_summary, bucket_means
from toto_lens.data.layout import Layout

LAYOUT = Layout(
    frames=3, rows=2, cols=2
)  # positions: 0 start, 1-4 frame 0, 5-8 frame 1, 9-12 frame 2, 13 end
COORDS = (LAYOUT.frame_of_position, LAYOUT.row_of_position, LAYOUT.col_of_position)


def _summary(a, positions, **kw):
    return attribution_summary(np.atleast_2d(a), np.atleast_1d(positions), *COORDS, **kw)


def test_one_target_by_hand():
    p = LAYOUT.position(2, 1, 0)  # 11: earlier are start, frame 0, frame 1 and frame 2's first row
    a = np.zeros(LAYOUT.length)
    a[LAYOUT.position(1, 1, 0)] = 3.0  # the previous frame, same place
    a[LAYOUT.position(2, 0, 0)] = -1.0  # the same frame, one row up
    a[0] = 1.0  # the start token
    a[p:] = 99.0  # at and after the target: not earlier, ignored
    r = _summary(a, p)
    np.testing.assert_allclose(r["share_abs"].values[0], [0.2, 0.6, 0.0])
    np.testing.assert_allclose(r["share_signed"].values[0], [-0.2, 0.6, 0.0], err_msg="signed / Σ|a|")
    np.testing.assert_allclose(r["uniform"].values[0], [2 / 11, 4 / 11, 4 / 11], err_msg="count / p")
    assert r["start_abs"].item() == pytest.approx(0.2) and r["start_uniform"].item() == pytest.approx(1 / 11)
    assert r["same_place_abs"].item() == pytest.approx(0.6) and r["prev_other_abs"].item() == 0.0
    assert r["same_place_uniform"].item() == pytest.approx(1 / 11)
    off = r["offset_abs"]
    assert off.sel(dframe=-1, drow=0, dcol=0).item() == pytest.approx(0.6)
    assert off.sel(dframe=0, drow=-1, dcol=0).item() == pytest.approx(0.2)
    assert np.isnan(off.sel(dframe=0, drow=1, dcol=0).item()), "a later row of the same frame is not earlier"
    assert r["mass"].item() == pytest.approx(5.0)
    assert list(r["dframe"].values) == [0, -1, -2] and list(r["drow"].values) == [-1, 0, 1]
    assert r["attribution"].dims == ("target", "position") and r["target_frame"].item() == 2


def test_offsets_are_averaged_over_the_targets_that_have_them():
    a = np.zeros((2, LAYOUT.length))
    p = np.array([LAYOUT.position(1, 0, 0), LAYOUT.position(2, 1, 1)])
    a[0, LAYOUT.position(0, 0, 0)] = 1.0  # target 0: everything on the same place one frame back
    a[1, LAYOUT.position(1, 0, 0)] = 1.0  # target 1: everything one frame back, one row and col up
    a[1, LAYOUT.position(0, 1, 1)] = 1.0  # and half on the same place two frames back
    r = _summary(a, p)
    off, count = r["offset_abs"], r["offset_count"]
    assert off.sel(dframe=-1, drow=0, dcol=0).item() == pytest.approx(0.5), "(1 + 0) / 2 targets"
    assert off.sel(dframe=-1, drow=-1, dcol=-1).item() == pytest.approx(0.5), "only target 1 has it"
    assert count.sel(dframe=-1, drow=-1, dcol=-1).item() == 1
    assert off.sel(dframe=-2, drow=0, dcol=0).item() == pytest.approx(0.5)
    np.testing.assert_allclose(r["same_place_abs"].values, [1.0, 0.0])
    np.testing.assert_allclose(r["share_abs"].sel(dframe=-2).values, [0.0, 0.5])
    np.testing.assert_allclose(r["uniform"].sel(dframe=-2).values, [0.0, 4 / 12], err_msg="no frame: 0")


def test_mass_spread_evenly_matches_its_controls():
    # The confound the controls expose: a heavy previous frame says nothing of "the same place" when the
    # mass is spread evenly; then every share equals its uniform control and same place = another place.
    p = LAYOUT.position(2, 1, 1)
    a = np.ones(LAYOUT.length)
    r = _summary(a, p)
    np.testing.assert_allclose(r["share_abs"].values, r["uniform"].values)
    assert r["start_abs"].item() == pytest.approx(r["start_uniform"].item())
    assert r["same_place_abs"].item() == pytest.approx(r["prev_other_abs"].item())
    assert r["same_place_abs"].item() == pytest.approx(r["same_place_uniform"].item())
    # The whole previous frame, evenly: its share is high, the same place is still one place among four.
    b = np.zeros(LAYOUT.length)
    b[LAYOUT.frame_slice(1)] = 1.0
    r = _summary(b, p)
    assert r["share_abs"].sel(dframe=-1).item() == 1.0
    assert r["same_place_abs"].item() == pytest.approx(r["prev_other_abs"].item()) == 0.25


def test_a_first_frame_target_has_no_previous_frame():
    p = LAYOUT.position(0, 0, 1)  # earlier: the start token and (0, 0, 0)
    a = np.zeros(LAYOUT.length)
    a[0], a[1] = 1.0, 3.0
    r = _summary(a, p)
    assert np.isnan(r["same_place_abs"].item()) and np.isnan(r["prev_other_abs"].item())
    np.testing.assert_allclose(r["share_abs"].values[0], [0.75, 0.0, 0.0])
    assert r["start_abs"].item() == 0.25 and r["start_uniform"].item() == 0.5


def test_completeness_gap_absolute_and_relative():
    a = np.zeros((2, LAYOUT.length))
    a[:, 1] = 1.0
    p = np.array([6, 7])
    r = _summary(a, p, delta=[0.01, -0.2], f_input=[-1.0, -2.0], f_baseline=[-2.0, -2.5])
    np.testing.assert_allclose(r["gap"].values, [0.01, 0.2])
    np.testing.assert_allclose(r["gap_relative"].values, [0.01, 0.4])
    np.testing.assert_allclose(r["delta"].values, [0.01, -0.2], err_msg="the sign is kept in delta")


def test_bucket_means_by_hand():
    a = np.zeros((2, LAYOUT.length))
    p = np.array([LAYOUT.position(1, 0, 0), LAYOUT.position(2, 0, 0)])
    a[0, LAYOUT.position(0, 0, 0)] = 1.0  # same place one frame back
    a[1, LAYOUT.position(1, 1, 1)] = 1.0  # one frame back, another place
    a[1, 0] = -1.0  # the start token, pushing down
    means = bucket_means(_summary(a, p))
    assert means["previous frame"]["abs"] == pytest.approx(0.75)  # (1 + 0.5) / 2
    assert means["previous frame, same place"]["abs"] == pytest.approx(0.5)  # (1 + 0) / 2
    assert means["previous frame, another place"]["abs"] == pytest.approx((0 + 0.5 / 3) / 2)
    assert means["start token"]["signed"] == pytest.approx(-0.25)
    assert means["previous frame"]["uniform"] == pytest.approx((4 / 5 + 4 / 9) / 2)
    assert means["older frames"]["uniform"] == pytest.approx((0 + 4 / 9) / 2)


def test_bad_input_is_one_line_errors():
    with pytest.raises(AnalysisError, match="expected attribution"):
        attribution_summary(np.zeros((2, 5)), [1, 2], *COORDS)
    with pytest.raises(AnalysisError, match="visual token after position 0"):
        _summary(np.zeros(LAYOUT.length), 0)
    with pytest.raises(AnalysisError, match="visual token"):
        _summary(np.zeros(LAYOUT.length), LAYOUT.length - 1)  # the end token
    with pytest.raises(AnalysisError, match="no targets"):
        attribution_summary(np.zeros((0, LAYOUT.length)), np.zeros(0, int), *COORDS)
