"""`studies.attribute` and `toto-lens attribute`: integrated gradients of a real checkpoint on its cache."""

import json

import numpy as np
import pytest
import xarray as xr
from extract_helpers import make_checkpoint
from helpers import assert_usage_error, run_cli

from toto_lens import open_cache, studies
from toto_lens.data.layout import layout_of
from toto_lens.studies.base import StudyError


@pytest.fixture
def attr_store():
    """A real (randomly initialised) checkpoint and its default store: 4 validation clips of moving digits."""
    make_checkpoint("attry")
    from toto_lens.run import extract

    extract("attry", clips=4, batch_size=4, acts=("pooled",))
    return open_cache("attry").encoding["source"]


def test_random_targets_add_up_and_see_only_earlier_tokens(attr_store):
    study = studies.attribute("attry", targets=3, n_steps=8, seed=1)
    r = study.result
    ds = open_cache("attry")
    layout = layout_of(ds)
    assert r.sizes["target"] == 3 and (r["target_frame"].values >= 1).all(), (
        "random targets have a frame before"
    )
    assert list(r["target_clip"].values) == list(ds["clip"].values[:3]), "one target per clip, in order"
    for i, p in enumerate(r["target_position"].values):
        assert np.all(r["attribution"].values[i, p:] == 0.0), "nothing at or after the target"
    total = r["attribution"].sum("position").values
    np.testing.assert_allclose(total - (r["f_input"] - r["f_baseline"]).values, r["delta"].values, atol=1e-5)
    assert (r["gap_relative"].values < 0.05).all(), r["gap_relative"].values
    shares = r["share_abs"].sum("dframe") + r["start_abs"]
    np.testing.assert_allclose(shares.values, 1.0, err_msg="the buckets hold all the mass once")
    assert r.sizes["dframe"] == layout.frames and r.attrs["study"] == "attribution"
    assert r.attrs["checkpoint"] == "attry" and r.attrs["options"]["targets"] == 3
    names = [row[0] for row in study.summary.rows]
    assert names[:3] == ["same frame", "previous frame", "previous frame, same place"]
    assert study.summary.data["gap_relative_max"] < 0.05
    assert "Integrated gradients of attry" in study.figure.layout.title.text
    again = studies.attribute("attry", targets=3, n_steps=8, seed=1).result
    np.testing.assert_array_equal(again["target_position"].values, r["target_position"].values)


def test_one_chosen_target(attr_store):
    r = studies.attribute("attry", clip=1, frame=2, row=1, col=3, n_steps=8).result
    layout = layout_of(open_cache("attry"))
    assert r.sizes["target"] == 1 and r["target_position"].item() == layout.position(2, 1, 3)
    assert r["target_clip"].item() == int(open_cache("attry")["clip"].values[1])
    assert np.isfinite(r["same_place_abs"].values).all()
    first = studies.attribute("attry", frame=0, row=0, col=1, n_steps=8).result
    assert np.isnan(first["same_place_abs"].item()), "frame 0 has no previous frame"
    assert first["start_abs"].item() + first["share_abs"].sel(dframe=0).item() == pytest.approx(1.0)


def test_cli_round_trip_writes_numbers_and_page(attr_store, capsys, tmp_path):
    out = tmp_path / "attr.nc"
    code, printed, err = run_cli(
        capsys, "attribute", "--ckpt", "attry", "--targets", "2", "--steps", "6", "--out", str(out), "--json"
    )
    assert code == 0, err
    data = json.loads(printed)
    assert data["targets"] == 2 and data["data"] == str(out) and data["figure"] == str(tmp_path / "attr.html")
    assert set(data["buckets"]) >= {"previous frame", "previous frame, same place", "start token"}
    saved = xr.open_dataset(out)
    alone = studies.attribute("attry", targets=2, n_steps=6).result
    np.testing.assert_allclose(saved["attribution"].values, alone["attribution"].values, rtol=1e-4, atol=1e-7)
    page = (tmp_path / "attr.html").read_text(encoding="utf-8")
    assert "toto-lens attribute --ckpt attry --targets 2 --steps 6" in page


@pytest.mark.parametrize(
    "args, message",
    [(["--frame", "1", "--row", "0"], "together"), (["--frame", "99", "--row", "0", "--col", "0"], "outside"),
     (["--frame", "1", "--row", "0", "--col", "-1"], "outside"), (["--clip", "2"], "together"),
     (["--clip", "50", "--frame", "1", "--row", "0", "--col", "0"], "complete clips"),
     (["--targets", "0"], "at least 1 target")],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(attr_store, capsys, tmp_path, args, message):
    code, out, err = run_cli(capsys, "attribute", "--ckpt", "attry", *args, "--out", str(tmp_path / "x.nc"))
    assert_usage_error(code, err, message)
    with pytest.raises(StudyError, match="together"):
        studies.attribute("attry", row=1)
