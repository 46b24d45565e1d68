"""`studies.track` and `toto-lens track`: label propagation on a real store, and the command's round trip."""

import json

import numpy as np
import pytest
import xarray as xr
from extract_helpers import make_checkpoint
from helpers import assert_usage_error, run_cli

from toto_lens import open_cache, studies
from toto_lens.analysis.davis import jaccard
from toto_lens.run import extract
from toto_lens.studies.base import StudyError


@pytest.fixture
def track_store():
    """A real (randomly initialised) checkpoint and its default store: 5 clips with per-token activations
    for the first 4, and the clips' masks."""
    make_checkpoint("tracky")
    extract("tracky", clips=5, batch_size=5, acts=("pooled", "token"), token_clips=4)
    return open_cache("tracky").encoding["source"]


def test_cli_round_trip_writes_numbers_and_page_and_matches_the_study(track_store, capsys, tmp_path):
    out = tmp_path / "track.nc"
    code, printed, err = run_cli(
        capsys, "track", "--ckpt", "tracky", "--layers", "0,-1", "--out", str(out), "--json"
    )
    assert code == 0, err
    data = json.loads(printed)
    n_blocks = open_cache("tracky").toto.n_blocks()
    names = [r["predictor"] for r in data["rows"]]
    assert names == ["layer-0", f"layer-{n_blocks}", "pixels", "copy-first", "token-oracle"], names
    assert data["clips"] == 4, "only the 4 clips with acts_token can be tracked"
    assert data["settings"] == {"topk": 5, "context": 7, "radius": 2, "temperature": 0.1}
    saved = xr.open_dataset(out)
    assert list(saved["predictor"].values) == names and list(saved["clip"].values) == [0, 1, 2, 3]
    alone = studies.track("tracky", layers=[0, -1]).result
    np.testing.assert_allclose(saved["JF"].values, alone["JF"].values)
    for row in data["rows"]:
        assert row["JF"] == pytest.approx((row["J"] + row["F"]) / 2)
    page = (tmp_path / "track.html").read_text(encoding="utf-8")
    assert (
        f"toto-lens track --ckpt tracky --layers 0,{n_blocks}" in page
        and "Predicted masks beside the truth" in page
    )


def test_copy_first_equals_an_independent_recomputation_from_the_stores_masks(track_store):
    result = studies.track("tracky", layers=[0], show=1).result
    masks = open_cache("tracky")["masks"].values[:4]
    per_object = []
    for clip in masks:
        for k in np.unique(clip[0])[np.unique(clip[0]) > 0]:
            per_object.append(np.mean([jaccard(clip[0] == k, clip[t] == k) for t in range(1, len(clip) - 1)]))
    assert float(result["J"].sel(predictor="copy-first")) == pytest.approx(np.mean(per_object))
    np.testing.assert_array_equal(result["true_masks"].values[0], masks[0])
    np.testing.assert_array_equal(
        result["pred_masks"].sel(predictor="copy-first").values[0], masks[0, [0] * len(masks[0])]
    )


def test_no_pixels_baseline_when_the_data_gives_other_clips(track_store):
    """A store whose recorded data seed no longer gives its clips: the pixel row is left out, with a note,
    rather than computed on frames that are not the store's."""
    ds = open_cache("tracky")
    dataset = json.loads(ds.attrs["dataset"])
    ds.attrs["dataset"] = json.dumps({**dataset, "seed": dataset["seed"] + 1})
    study = studies.track(cache=ds, layers=[0])
    assert "pixels" not in study.result["predictor"].values
    assert any("gives other clips than the cache holds" in n for n in study.summary.notes), (
        study.summary.notes
    )


@pytest.mark.parametrize(
    "args, message",
    [(["--topk", "0"], "topk ≥ 1"),
     (["--layers", "7"], "the cache holds layers"),
     (["--clips", "0"], "at least one clip")],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(track_store, capsys, tmp_path, args, message):
    code, out, err = run_cli(capsys, "track", "--ckpt", "tracky", *args, "--out", str(tmp_path / "x.nc"))
    assert_usage_error(code, err, message)


def test_a_store_without_token_activations_is_refused_with_the_fix():
    make_checkpoint("tracknone")
    extract("tracknone", clips=2, batch_size=2, acts=("pooled",))
    with pytest.raises(StudyError, match=r"no acts_token.*--acts pooled,frame,token"):
        studies.track("tracknone")
