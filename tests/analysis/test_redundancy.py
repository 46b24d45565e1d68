import json
import math

import numpy as np
import pytest
import xarray as xr
from helpers import run_cli

from toto_lens.analysis import AnalysisError
from toto_lens.analysis.predictors import _witten_bell, predictor_losses
from toto_lens.analysis.redundancy import copy_accuracy, loss_by_frame, loss_by_position, redundancy
from toto_lens.data.layout import Layout
from toto_lens.figures import FigureError
from toto_lens.figures.redundancy import redundancy_figure


def make_cache(codes, loss=None, kind=None, vocab_codes=None, config_as_json=False) -> xr.Dataset:
    """An in-memory cache following docs/cache-schema.md: tokens, loss and the grid coordinates."""
    codes = np.asarray(codes)
    clips, frames, rows, cols = codes.shape
    layout = Layout(frames, rows, cols)
    kinds = np.zeros(clips, dtype=np.int8) if kind is None else np.asarray(kind, dtype=np.int8)
    tokens = np.stack(
        [layout.pack(c, "video" if k == 0 else "images") for c, k in zip(codes, kinds, strict=True)]
    )
    if loss is None:
        loss = np.random.default_rng(0).random(tokens.shape)
    loss = np.array(loss, dtype=np.float32)
    loss[:, 0] = np.nan  # the schema: nothing predicts the start token
    config = {"vocab_size": 4 + (vocab_codes or int(codes.max()) + 1), "pad_id": 0, "video_start_id": 1}
    config |= {"end_id": 2, "image_start_id": 3}
    return xr.Dataset(
        {"tokens": (("clip", "position"), tokens.astype(np.int32)), "loss": (("clip", "position"), loss)},
        coords={
            "clip": np.arange(clips),
            "position": np.arange(layout.length),
            "pos_frame": ("position", layout.frame_of_position),
            "row": ("position", layout.row_of_position),
            "col": ("position", layout.col_of_position),
            "kind": ("clip", kinds),
        },
        attrs={"model_config": json.dumps(config) if config_as_json else config},
    )


def hand_cache() -> xr.Dataset:
    # 2 clips of 2 frames of 1×2 tokens: positions 0 start, 1-2 frame 0, 3-4 frame 1, 5 end.
    loss = [[0, 1, 2, 3, 4, 9], [0, 3, 4, 5, 6, 9]]
    return make_cache(np.zeros((2, 2, 1, 2), dtype=int), loss=loss)


def test_position_and_frame_means_equal_hand_computed_values():
    ds = hand_cache()
    pos = loss_by_position(ds)
    np.testing.assert_allclose(pos["position_loss"].values[1:], [2, 3, 4, 5, 9], err_msg="mean over clips")
    assert np.isnan(pos["position_loss"].values[0]), "position 0 has no loss and should stay NaN"
    np.testing.assert_allclose(pos["position_loss_std"].values[1:5], 1.0, err_msg="std over clips, ddof 0")
    assert pos["position_count"].values.tolist() == [0, 2, 2, 2, 2, 2], "count of clips with a loss"
    frame = loss_by_frame(ds)
    # Clip means per frame: (1.5, 3.5) and (3.5, 5.5); the end token (loss 9) belongs to no frame.
    np.testing.assert_allclose(
        frame["frame_loss"].values, [2.5, 4.5], err_msg="end token leaked into a frame"
    )
    np.testing.assert_allclose(frame["frame_loss_std"].values, [1.0, 1.0], err_msg="spread of the clip means")
    np.testing.assert_allclose(frame["frame_loss_quantile"].sel(quantile=0.5).values, [2.5, 4.5])
    assert frame["frame_count"].values.tolist() == [2, 2]
    result = redundancy(ds, fit="all")
    assert result.attrs["first_frame_loss"] == pytest.approx(2.5), "summary disagrees with frame_loss"
    assert result.attrs["later_frames_loss"] == pytest.approx(4.5)
    assert result.attrs["first_to_later_ratio"] == pytest.approx(2.5 / 4.5), "ratio is first / later"
    assert result.attrs["in_context_score"] == pytest.approx(2.0), "last frame minus first frame"
    model_row = result["frame_predictor_loss"].sel(predictor="model").values
    np.testing.assert_allclose(model_row, [2.5, 4.5], err_msg="with fit='all' the model row uses every clip")


def test_a_nan_loss_inside_a_frame_is_skipped_not_propagated():
    ds = hand_cache()
    ds["loss"][0, 2] = np.nan
    frame = loss_by_frame(ds)
    # Clip 0's frame 0 is now just 1.0, clip 1's still 3.5.
    assert frame["frame_loss"].values[0] == pytest.approx(2.25), "one missing token should not blank a frame"


def test_every_predictor_matches_counts_by_hand():
    # One clip, frames [0, 1] and [0, 1]; 3 codes (ids 4, 5, 6), fitted and evaluated in-sample.
    ds = make_cache(np.array([[[[0, 1]], [[0, 1]]]]), vocab_codes=3)
    loss = predictor_losses(ds, fit="all", alpha=0.5)
    u = np.array([2.5, 2.5, 0.5]) / 5.5  # add-α: counts (2, 2, 0), N = 4, V = 3
    np.testing.assert_allclose(loss.sel(predictor="unigram").values[0, 1:5], -np.log(u[[0, 1, 0, 1]]))
    # Witten-Bell: p = (c(h,x) + T(h) u(x)) / (c(h) + T(h)).
    bigram = [(1 + u[0]) / 2, (2 + u[1]) / 3, (1 + u[0]) / 2, (2 + u[1]) / 3]  # contexts: start, 0, 1, 0
    np.testing.assert_allclose(loss.sel(predictor="bigram").values[0, 1:5], -np.log(bigram))
    copy = loss.sel(predictor="copy").values[0]
    assert np.isnan(copy[1:3]).all(), "frame 0 has no previous frame: copy must be NaN there, no fallback"
    np.testing.assert_allclose(copy[3:5], -np.log([(1 + u[0]) / 2, (1 + u[1]) / 2]))
    assert np.isnan(loss.values[:, 0, [0, 5]]).all(), "special tokens belong to no predictor's comparison"


def test_witten_bell_conditionals_sum_to_one_for_seen_and_unseen_contexts():
    rng = np.random.default_rng(1)
    codes, contexts = 5, 7
    h_fit, x_fit = rng.integers(0, 4, 200), rng.integers(0, codes, 200)  # contexts 4-6 never seen
    unigram = np.bincount(x_fit, minlength=codes) + 0.5
    unigram = unigram / unigram.sum()
    h, x = np.meshgrid(np.arange(contexts), np.arange(codes), indexing="ij")
    p = np.exp(-_witten_bell((h_fit, h.ravel()), (x_fit, x.ravel()), unigram, contexts)).reshape(
        contexts, codes
    )
    np.testing.assert_allclose(
        p.sum(axis=1), 1.0, err_msg="a baseline loss is only honest for a distribution"
    )
    np.testing.assert_allclose(p[5], unigram, err_msg="an unseen context should fall back to the unigram")


def test_copy_baseline_is_exact_on_clips_of_identical_frames():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 6, (40, 1, 2, 2))
    ds = make_cache(np.repeat(frame, 4, axis=1), vocab_codes=6)
    acc = copy_accuracy(ds)
    assert np.isnan(acc["frame_copy_accuracy"].values[0]), "frame 0 has nothing to copy"
    np.testing.assert_array_equal(
        acc["frame_copy_accuracy"].values[1:], 1.0, err_msg="identical frames copy exactly"
    )
    result = redundancy(ds)  # held-out half: the copy conditional still sees every code as a context
    copy = result["frame_predictor_loss"].sel(predictor="copy").values
    assert np.isnan(copy[0]) and (copy[1:] < 0.05).all(), (
        f"copy loss should be ≈ 0 up to smoothing, got {copy}"
    )
    unigram = result["frame_predictor_loss"].sel(predictor="unigram").values
    assert (unigram[1:] > 1.0).all(), "the unigram cannot know the frame, so it stays near log 6"
    assert result.attrs["later_frames_copy"] < 0.05


def test_half_split_fits_on_clips_it_never_evaluates():
    # Clip i holds code i only: a baseline fitted on the evaluated clips would know their code.
    codes = np.broadcast_to(np.arange(10)[:, None, None, None], (10, 2, 1, 2))
    ds = make_cache(codes, vocab_codes=10)
    loss = predictor_losses(ds, fit="half", alpha=0.5, seed=3)
    assert loss.attrs["fit_clips"] == 5 and loss.attrs["eval_clips"] == loss.sizes["clip"] == 5
    unseen = -math.log(0.5 / (5 * 4 + 0.5 * 10))  # add-α probability of a code counted zero times
    np.testing.assert_allclose(
        loss.sel(predictor="unigram").values[:, 1:5],
        unseen,
        err_msg="an evaluated clip leaked into the fit set",
    )
    one = predictor_losses(ds.isel(clip=[0]), fit="half")
    assert "in-sample" in one.attrs["baseline_fit"], "a single clip cannot be held out; say so"


def test_kind_selects_video_or_image_clips():
    loss = np.concatenate([np.full((2, 6), 1.0), np.full((2, 6), 3.0)])
    ds = make_cache(np.zeros((4, 2, 1, 2), dtype=int), loss=loss, kind=[0, 0, 1, 1])
    assert redundancy(ds, kind="video").attrs["first_frame_loss"] == pytest.approx(1.0), "video clips only"
    assert redundancy(ds, kind=1).attrs["first_frame_loss"] == pytest.approx(3.0), "image clips only"
    with pytest.raises(AnalysisError, match="kind must be one of"):
        redundancy(ds, kind="audio")
    with pytest.raises(AnalysisError, match="no kind coordinate"):
        redundancy(ds.drop_vars("kind"), kind="video")


def test_missing_loss_or_tokens_is_one_clear_analysis_error():
    ds = hand_cache()
    with pytest.raises(AnalysisError, match=r"the cache has no loss; extract it with `toto-lens extract"):
        redundancy(ds.drop_vars("loss"))
    with pytest.raises(AnalysisError, match="the cache has no tokens"):
        copy_accuracy(ds.drop_vars("tokens"))
    with pytest.raises(AnalysisError, match="pos_frame"):
        loss_by_frame(ds.drop_vars("pos_frame"))


def test_lazy_dask_cache_and_json_model_config_give_the_same_result():
    ds = make_cache(np.random.default_rng(2).integers(0, 5, (6, 3, 2, 2)), vocab_codes=5)
    eager = redundancy(ds)
    lazy = redundancy(make_cache(ds["tokens"].values[:, 1:-1].reshape(6, 3, 2, 2) - 4, config_as_json=True,
                                 vocab_codes=5).chunk({"clip": 2}))  # fmt: skip
    assert lazy.attrs["vocab_source"] == "model_config", "a JSON-string model_config should be read too"
    xr.testing.assert_allclose(
        eager[["frame_predictor_loss", "frame_copy_accuracy"]],
        lazy[["frame_predictor_loss", "frame_copy_accuracy"]],
    )


def test_figure_draws_model_band_and_each_baseline():
    fig = redundancy_figure(redundancy(make_cache(np.random.default_rng(0).integers(0, 5, (6, 3, 2, 2)))))
    names = " ".join(t.name or "" for t in fig.data)
    for label in (
        "model (3 evaluation clips)",
        "25-75% of 6 clips",
        "copy (fitted on 3 other",
        "unigram",
        "bigram",
    ):
        assert label in names, f"the figure lacks {label!r}: {names}"
    assert fig.data[-1].name.startswith("model ("), "the model is drawn last, on top of the baselines"
    result = redundancy(make_cache(np.random.default_rng(0).integers(0, 5, (6, 3, 2, 2))))
    same = result["position_predictor_loss"].sel(predictor="model").values
    line = fig.data[-1]
    assert np.allclose(line.y, same[np.isfinite(same)]), "the model's line is on the baselines' clips"
    labels = [a.text for a in fig.layout.annotations if a.text.startswith("frame ")]
    assert labels == ["frame 0", "frame 1", "frame 2"], f"each frame named in the position panel: {labels}"
    with pytest.raises(FigureError, match="redundancy"):
        redundancy_figure(xr.Dataset())


def test_cli_writes_figure_and_numbers(capsys, tmp_path):
    from extract_helpers import make_checkpoint

    from toto_lens.run import extract
    from toto_lens.store import open_cache

    make_checkpoint("tiny")
    store = tmp_path / "cache.zarr"
    extract("tiny", clips=6, batch_size=6, acts=("pooled",), out=store)
    ds = open_cache(path=store)
    code, out, err = run_cli(
        capsys,
        "redundancy",
        "--ckpt",
        "any",
        "--cache",
        str(store),
        "--out",
        str(tmp_path / "r.html"),
        "--json",
    )
    assert code == 0, err
    summary, expected = json.loads(out), redundancy(ds)
    assert summary["first_to_later_ratio"] == pytest.approx(expected.attrs["first_to_later_ratio"])
    assert summary["data"] == str(tmp_path / "r.nc") and (tmp_path / "r.html").is_file(), "figure and numbers"
    saved = xr.open_dataset(tmp_path / "r.nc")
    xr.testing.assert_allclose(saved["frame_predictor_loss"], expected["frame_predictor_loss"])
    assert saved.attrs["study"] == "redundancy" and str(store) in saved.attrs["cache"], (
        "the numbers should say which study made them, from which store"
    )
