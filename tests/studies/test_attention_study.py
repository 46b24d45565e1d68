"""`studies.attention` on a real store: a clip with stored patterns reads them, any other clip is computed
live, and both agree with patterns recomputed from the weights by hand; the command writes .nc and .html."""

import json

import numpy as np
import pytest
import torch
import xarray as xr
from extract_helpers import make_checkpoint
from helpers import reference_patterns, run_cli

from toto_lens import load_checkpoint, open_cache, studies
from toto_lens.analysis.attention import attention_distances, frame_mass, frame_mass_summary, query_map
from toto_lens.data.layout import layout_of
from toto_lens.io import dict_attr
from toto_lens.run import extract
from toto_lens.studies.base import StudyError


@pytest.fixture(scope="module")
def store(cache_root):
    """A checkpoint and its store of 4 clips, full patterns for the first 2: built once for the module."""
    with cache_root("attention-cache") as root:
        make_checkpoint("tiny")
        extract("tiny", clips=4, batch_size=2, acts=("pooled",), attn=("frame", "pattern"), pattern_clips=2)
        return root, open_cache("tiny").encoding["source"]


def reference(store, clip):
    """(every block's pattern (H, T, T) of one clip, recomputed by hand; the clip's tokens; its layout)."""
    ds = open_cache(path=store[1])
    tokens = ds["tokens"].sel(clip=clip).values.astype(np.int64)
    model = load_checkpoint(dict_attr(ds.attrs, "checkpoint")["path"]).model
    with torch.no_grad():
        patterns, _ = reference_patterns(model, torch.as_tensor(tokens)[None])
    return [p[0].numpy() for p in patterns], tokens, layout_of(ds)


@pytest.mark.parametrize("clip, source, atol", [(0, "store", 2e-3), (3, "live", 1e-6)])
def test_a_stored_clip_reads_the_store_and_another_runs_live_both_as_the_reference(store, clip, source, atol):
    study = studies.attention(cache=store[1], clip=clip, layer=2, head=1, query=(4, 3, 5))
    r, a = study.result, study.result.attrs
    assert a["pattern_source"] == source, (
        f"clip {clip}: patterns from the {source}, got {a['pattern_source']}"
    )
    patterns, _, layout = reference(store, clip)
    position = layout.position(4, 3, 5)
    expected = query_map(patterns[1][1, position], layout, (4, 3, 5))
    np.testing.assert_allclose(r["query_weights"], expected, atol=atol, err_msg="the query's row of L2.H1")
    assert a["sink"] == pytest.approx(patterns[1][1, position, 0], abs=atol), "the query's start-token weight"
    heads = attention_distances(np.stack(patterns), layout)  # (layer, head), from the hand-made patterns
    for name in heads.data_vars:
        np.testing.assert_allclose(r[name], heads[name], rtol=1e-4, err_msg=f"{name} of the clip, per head")
    assert r["query_weights"].dims == ("kframe", "row", "col") and r["frames"].dims == ("frame", "y", "x")
    assert (
        r["frames"].shape == (16, 32, 32) and 0 <= float(r["frames"].min()) <= float(r["frames"].max()) <= 1
    )
    assert (a["study"], a["clip"], a["layer"], a["head"], a["query"]) == (
        "attention",
        clip,
        2,
        1,
        [4, 3, 5],
    ), a
    assert a["frame_mass_source"] == "store" and a["frame_mass_clips"] == 4, "attn_frame of every clip"
    stored = frame_mass_summary(open_cache(path=store[1])["attn_frame"])
    np.testing.assert_allclose(r["mean_temporality"], stored["temporality"], rtol=1e-6)
    assert len(study.figures) == 3 and "sink) mass" in study.figure.layout.title.text


def test_defaults_and_a_cache_without_attention_fall_back_to_the_live_clip(store):
    ds = open_cache(path=store[1]).drop_vars(["attn_frame", "attn_pattern"])
    study = studies.attention(cache=ds, clip=1)
    a = study.result.attrs
    assert (a["layer"], a["head"], a["query"]) == (1, 0, [15, 4, 4]), (
        "middle block, head 0, last frame's centre"
    )
    assert (a["pattern_source"], a["frame_mass_source"]) == ("live", "live"), a
    patterns, _, layout = reference(store, 1)
    np.testing.assert_allclose(
        study.result["frame_mass"], frame_mass(np.stack(patterns), layout), rtol=1e-4,
        err_msg="without attn_frame the frame-to-frame mass is the clip's own",
    )  # fmt: skip
    rows = study.summary.data["most_temporal"]
    assert len(rows) == 2 and rows[0]["temporality"] >= rows[1]["temporality"], "most temporal heads first"
    assert "start-token (sink) mass" in study.summary.notes[-1], study.summary.notes


def test_questions_it_cannot_answer_are_refused(store):
    with pytest.raises(StudyError, match="no clip 9"):
        studies.attention(cache=store[1], clip=9)
    with pytest.raises(StudyError, match="layers 1 … 2"):
        studies.attention(cache=store[1], layer=3)
    with pytest.raises(StudyError, match="frame,row,col"):
        studies.attention(cache=store[1], query="1,2")


def test_the_command_writes_numbers_and_figures_and_prints_the_summary(store, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TOTO_LENS_CACHE", str(store[0]))
    out = tmp_path / "a.html"
    code, printed, err = run_cli(capsys, "attention", "--ckpt", "tiny", "--clip", "1", "--layer", "2",
                                 "--head", "1", "--query", "3,2,5", "--out", str(out), "--json")  # fmt: skip
    assert code == 0, err
    data = json.loads(printed)
    assert data["data"] == str(tmp_path / "a.nc") and data["figure"] == str(out), data
    assert (data["pattern_source"], data["query"], data["layer"]) == ("store", [3, 2, 5], 2), data
    saved = xr.open_dataset(tmp_path / "a.nc")
    assert saved.attrs["pattern_source"] == "store" and saved["query_weights"].dims == (
        "kframe",
        "row",
        "col",
    )
    assert data["sink"] == pytest.approx(saved.attrs["sink"]), "the printed sink is the saved one"
    assert out.read_text().count("Plotly.newPlot") == 3, "the map, the head scatter and the frame matrices"
    code, _, err = run_cli(capsys, "attention", "--cache", str(store[1]), "--query", "x", "--out", str(out))
    assert code == 2 and err.startswith("error: ") and "frame,row,col" in err, err
