"""`studies.embed` and `toto-lens embed`: a UMAP of each layer of a real store, and the command's round trip."""

import json

import numpy as np
import pytest
import xarray as xr
from extract_helpers import make_checkpoint
from helpers import assert_usage_error, run_cli

from toto_lens import open_cache, studies
from toto_lens.run import extract
from toto_lens.studies.base import StudyError


@pytest.fixture
def embed_store():
    """A real (randomly initialised) checkpoint and its default store: 6 clips, pooled and per-frame acts."""
    make_checkpoint("embedy")
    extract("embedy", clips=6, batch_size=6, acts=("pooled", "frame"))
    return open_cache("embedy").encoding["source"]


def test_cli_round_trip_writes_numbers_and_page_and_matches_the_study(embed_store, capsys, tmp_path):
    out = tmp_path / "embed.nc"
    args = ["--ckpt", "embedy", "--source", "frame", "--layers", "0,-1", "--n-neighbors", "8"]
    code, printed, err = run_cli(capsys, "embed", *args, "--out", str(out), "--json")
    assert code == 0, err
    data = json.loads(printed)
    assert data["data"] == str(out) and data["figure"] == str(tmp_path / "embed.html")
    assert data["points"] == 6 * 16 and data["label"] == "motion" and len(data["rows"]) == 2
    saved = xr.open_dataset(out)
    n_layers = open_cache("embedy").toto.n_blocks()
    assert list(saved["layer"].values) == [0, n_layers] and saved["embedding"].shape == (2, 96, 2)
    assert saved["motion"].dims == ("point",) and "flag_meanings" in saved["motion"].attrs
    assert saved.attrs["study"] == "embed" and saved.attrs["umap_n_neighbors"] == 8
    alone = studies.embed("embedy", source="frame", layers=[0, -1], n_neighbors=8).result
    np.testing.assert_array_equal(saved["embedding"].values, alone["embedding"].values)
    page = (tmp_path / "embed.html").read_text(encoding="utf-8")
    assert "toto-lens embed --ckpt embedy --label motion --source frame --layers 0,-1" in page


@pytest.mark.parametrize(
    "args, message",
    [(["--label", "colour"], "the cache's labels are digit, kind, motion"),
     (["--source", "token"], "choose one of pooled, frame"),
     ([], "trustworthiness needs more than 30 points")],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(embed_store, capsys, tmp_path, args, message):
    code, out, err = run_cli(capsys, "embed", "--ckpt", "embedy", *args, "--out", str(tmp_path / "x.nc"))
    assert_usage_error(code, err, message)
    with pytest.raises(StudyError, match="labels are"):
        studies.embed("embedy", label="nope")
