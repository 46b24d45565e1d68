"""`studies.lens` and `toto-lens lens`: the logit lens of a real checkpoint on clips of its cache."""

import json

import numpy as np
import pytest
import torch
import xarray as xr
from extract_helpers import make_checkpoint
from helpers import assert_usage_error, run_cli

from toto_lens import load_checkpoint, open_cache, studies
from toto_lens.run import extract
from toto_lens.run.hooks import capture
from toto_lens.run.lens import lens_logits
from toto_lens.studies.base import StudyError


@pytest.fixture
def lens_store():
    """A real (randomly initialised) checkpoint and its default store: 6 validation clips of moving digits."""
    make_checkpoint("lensy")
    extract("lensy", clips=6, batch_size=6, acts=("pooled",))
    return open_cache("lensy").encoding["source"]


def test_the_last_layer_is_the_model_output_and_earlier_ones_are_not(lens_store):
    study = studies.lens("lensy", clips=4)
    r = study.result
    n_layers = load_checkpoint("lensy").config.n_layers
    assert list(r["layer"].values) == list(range(n_layers + 1)), "embedding plus one layer per block"
    np.testing.assert_allclose(
        r["kl"].sel(layer=n_layers).values, 0.0, atol=1e-4, err_msg="head of the last block"
    )
    np.testing.assert_allclose(r["agreement"].sel(layer=n_layers).values, 1.0)
    first, last = float(r["kl_mean"].sel(layer=0)), float(r["kl_mean"].sel(layer=n_layers))
    # An untrained head predicts nearly uniformly, so every KL is small; the embedding's is still not 0.
    assert first > 1e-6 and first > 100 * last, (
        f"the embedding alone is not the model's prediction: {first}, {last}"
    )
    assert np.isfinite(r.attrs["control_kl_mean"]) and r.attrs["control_kl_mean"] > 0, "another clip differs"
    visual = int((open_cache("lensy")["pos_frame"].values >= 0).sum())
    assert int(r["tokens"].sum()) == 4 * visual, "every visual token of the 4 clips, each counted once"
    assert (
        r.attrs["study"] == "lens" and r.attrs["checkpoint"] == "lensy" and r.attrs["options"]["clips"] == 4
    )
    assert [row["layer"] for row in study.summary.data["rows"]] == list(r["layer"].values)
    assert study.figure.layout.title.text.startswith("Logit lens of lensy")


def test_a_middle_layer_matches_the_head_read_by_hand(lens_store):
    ck = load_checkpoint("lensy")
    ds = open_cache("lensy")
    ids = torch.as_tensor(ds["tokens"].values[:2].astype(np.int64))
    with torch.inference_mode(), capture(ck.model, ["blocks.0.hook_resid_post"]) as acts:
        final = ck.model(ids)
        layer1 = lens_logits(ck.model, acts["blocks.0.hook_resid_post"])
    p, q = final.log_softmax(-1), layer1.log_softmax(-1)
    kl = (p.exp() * (p - q)).sum(-1)[:, :-2]  # positions predicting a visual token (the last two do not)
    got = studies.lens("lensy", clips=2).result["kl_mean"].sel(layer=1)
    np.testing.assert_allclose(float(got), float(kl.mean()), rtol=1e-4)


def test_the_decoded_grid_holds_the_clip_then_each_layer(lens_store):
    r = studies.lens("lensy", clips=2, clip=1).result
    assert r["grid"].dims == ("grid_row", "frame", "y", "x")
    assert list(r["grid_row"].values) == ["clip", *map(str, r["layer"].values)]
    assert r.attrs["grid_clip"] == int(open_cache("lensy")["clip"].values[1])
    assert 0 <= float(r["grid"].min()) and float(r["grid"].max()) <= 1


def test_cli_round_trip_writes_numbers_and_page(lens_store, capsys, tmp_path):
    out = tmp_path / "lens.nc"
    code, printed, err = run_cli(
        capsys, "lens", "--ckpt", "lensy", "--clips", "3", "--out", str(out), "--json"
    )
    assert code == 0, err
    data = json.loads(printed)
    assert data["clips"] == 3 and data["data"] == str(out) and data["figure"] == str(tmp_path / "lens.html")
    saved = xr.open_dataset(out)
    alone = studies.lens("lensy", clips=3).result
    np.testing.assert_allclose(saved["kl"].values, alone["kl"].values, rtol=1e-5)
    page = (tmp_path / "lens.html").read_text(encoding="utf-8")
    assert "toto-lens lens --ckpt lensy --clips 3" in page and page.count("Plotly.newPlot") == 2


@pytest.mark.parametrize(
    "args, message",
    [(["--ckpt", "lensy", "--clips", "0"], "at least one clip"), ([], "name a checkpoint"),
     (["--ckpt", "no-such-checkpoint"], "")],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(lens_store, capsys, tmp_path, args, message):
    code, out, err = run_cli(capsys, "lens", *args, "--out", str(tmp_path / "x.nc"))
    assert_usage_error(code, err, message)
    with pytest.raises(StudyError, match="at least one clip"):
        studies.lens("lensy", clips=-1)
