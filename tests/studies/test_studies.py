"""`toto_lens.studies`: each study is its analysis on a real store, labelled with what it ran on, and saved
whole; the command line prints exactly the study's summary."""

import json

import numpy as np
import pytest
import xarray as xr
from extract_helpers import make_checkpoint
from helpers import run_cli

from toto_lens import load_checkpoint, open_cache, studies
from toto_lens.analysis.probing import best_layer, probe_layers
from toto_lens.analysis.redundancy import redundancy
from toto_lens.io import dict_attr
from toto_lens.run import extract
from toto_lens.studies.base import StudyError, Summary, output_paths


@pytest.fixture
def tiny_store():
    """A real checkpoint and its default store: 40 validation clips of moving digits, every layer."""
    make_checkpoint("tiny")
    extract("tiny", clips=40, batch_size=20, acts=("pooled", "frame"))
    return open_cache("tiny").encoding["source"]


def test_probing_study_is_the_analysis_and_says_what_it_ran_on(tiny_store):
    study = studies.probing("tiny", tasks="digit,motion", seeds=2, layers="0,2")
    expected = probe_layers(open_cache("tiny"), tasks=["digit", "motion"], seeds=[0, 1], layers=[0, 2])
    xr.testing.assert_allclose(study.result["val_score"], expected["val_score"])
    a = study.result.attrs
    assert (a["study"], a["checkpoint"], a["dataset"]) == ("probing", "tiny", "moving-digits-val"), a
    assert a["checkpoint_sha256"] == load_checkpoint("tiny").sha256, "the weights the cache came from"
    assert a["cache"] == str(tiny_store) and a["options"]["seeds"] == [0, 1], a
    rows = {(r["task"], r["probe"]): r for r in study.summary.data["rows"]}
    for task in ("digit", "motion"):
        assert rows[(task, "linear")]["best_layer"] == best_layer(expected, task, "linear"), task
    assert study.figure.layout.title.text.startswith("Layer probing"), "the main figure comes first"


def test_a_cache_path_a_dataset_and_a_checkpoint_name_give_one_answer(tiny_store):
    by_name = studies.redundancy("tiny").result
    by_path = studies.redundancy(cache=tiny_store).result
    by_dataset = studies.redundancy(cache=open_cache(path=tiny_store)).result
    expected = redundancy(open_cache("tiny"))
    for got in (by_name, by_path, by_dataset):
        xr.testing.assert_allclose(got["frame_predictor_loss"], expected["frame_predictor_loss"])
    with pytest.raises(StudyError, match="name a checkpoint"):
        studies.redundancy()


@pytest.mark.parametrize("suffix, data, figure", [(".nc", ".nc", ".html"), (".zarr", ".zarr", ".html"),
                                                  (".html", ".nc", ".html")])  # fmt: skip
def test_save_writes_the_numbers_and_the_figure_side_by_side(tiny_store, tmp_path, suffix, data, figure):
    study = studies.redundancy("tiny", kind="video")
    written = study.save(tmp_path / f"r{suffix}")
    assert written == {"data": tmp_path / f"r{data}", "figure": tmp_path / f"r{figure}"}, written
    saved = (
        xr.open_zarr(written["data"], consolidated=False)
        if data == ".zarr"
        else xr.open_dataset(written["data"])
    )
    xr.testing.assert_allclose(saved["frame_loss"].load(), study.result["frame_loss"])
    assert dict_attr(saved.attrs, "options") == {"kind": "video", "fit": "half"}, "options survive as JSON"
    assert written["figure"].read_text().count("Plotly.newPlot") == 1
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert leftovers == sorted({f"r{data}", f"r{figure}"}), f"temporary files left behind: {leftovers}"


def test_an_unwritable_suffix_is_refused_before_any_work():
    assert output_paths("a/b.nc") == (output_paths("a/b.nc")[0], output_paths("a/b.html")[1])
    with pytest.raises(StudyError, match="use .nc or .zarr"):
        output_paths("curves.csv")


def test_summary_text_is_the_table_the_command_prints(tiny_store, capsys, tmp_path):
    study = studies.probing("tiny", tasks="motion", seeds=2, layers="1")
    text = study.summary.text()
    assert text.splitlines()[0] == study.summary.title and "best layer" in text.splitlines()[1]
    assert all(cell in text for row in study.summary.rows for cell in row), "every cell is in the text"
    code, out, err = run_cli(capsys, "probe", "--ckpt", "tiny", "--task", "motion", "--seeds", "2",
                             "--layers", "1", "--out", str(tmp_path / "p.nc"), "--json")  # fmt: skip
    assert code == 0, err
    printed = json.loads(out)
    assert printed["rows"] == json.loads(json.dumps(study.summary.data["rows"])), "the CLI prints the study"
    assert printed["data"] == str(tmp_path / "p.nc") and printed["figure"] == str(tmp_path / "p.html")


def test_summary_pads_columns_and_keeps_notes_and_caption():
    s = Summary("title", ["a", "long name"], [["x", "1"], ["yyyy", "22"]], {}, ["note"], "caption")
    lines = s.text().splitlines()
    assert lines == ["note", "title", "a     long name", "----  ---------", "x     1", "yyyy  22", "caption"]
    assert "<td>yyyy</td>" in s._repr_html_(), "a notebook shows the table"


def test_induction_study_takes_its_clips_from_the_checkpoints_cache(tiny_store):
    study = studies.induction("tiny", n=6, batch=2)
    assert np.isfinite(study.result["previous_frame"]).all(), "the cache's clips give the video scores"
    assert any("the cache of tiny" in note for note in study.summary.notes), study.summary.notes
    assert study.result.attrs["study"] == "induction" and study.result.attrs["options"]["n"] == 6


def test_ngrams_study_counts_what_the_analysis_counts():
    from toto_lens.analysis.ngrams import ngram_stats
    from toto_lens.data import open_source, stack_frames
    from toto_lens.tokenizers import load_tokenizer

    study = studies.ngrams("kmeans-64", n=[1, 2], frames=32, data="moving-digits")
    tok = load_tokenizer("kmeans-64")
    expected = ngram_stats(
        tok.encode(stack_frames(open_source("moving-digits", "val", 2))[:32]), 64, ns=(1, 2)
    )
    assert study.summary.data["frames"] == 32
    assert [r["distinct"] for r in study.summary.data["rows"]] == [
        int(expected["distinct"].sel(n=k)) for k in (1, 2)
    ]
    assert len(study.figures) == 3, "a rank figure per n and the summary figure"
    with pytest.raises(StudyError, match="at least 16"):
        studies.ngrams("kmeans-64", frames=4)


def test_probing_several_checkpoints_draws_the_untrained_copy_beside_the_model(tiny_store, capsys, tmp_path):
    from toto_lens.checkpoints import init_checkpoint

    init_checkpoint("tiny-untrained", like="tiny", seed=1)
    extract("tiny-untrained", clips=40, batch_size=20, acts=("pooled", "frame"))
    code, out, err = run_cli(capsys, "probe", "--ckpt", "tiny", "--ckpt", "tiny-untrained", "--task", "motion",
                             "--seeds", "2", "--out", str(tmp_path / "p.nc"), "--json")  # fmt: skip
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert [r["checkpoint"] for r in rows] == ["tiny", "tiny-untrained"], rows
    assert all(r["n_train"] + r["n_val"] == 40 for r in rows), "the clips each probe used are reported"
    saved = xr.open_dataset(tmp_path / "p.nc")
    alone = studies.probing("tiny-untrained", tasks="motion", seeds=2).result
    got = saved["val_score"].sel(checkpoint="tiny-untrained", drop=True)
    xr.testing.assert_allclose(got, alone["val_score"].astype(got.dtype))
    page = (tmp_path / "p.html").read_text(encoding="utf-8")
    assert "toto-lens probe --ckpt tiny --ckpt tiny-untrained --task motion" in page, "the command to redo it"
    assert "<title>Layer probing of tiny, tiny-untrained" in page


def test_induction_study_ranks_prefix_matching_by_its_control_and_notes_a_confounded_length(tiny_store):
    chosen = studies.induction("tiny", batch=2)
    per_frame = chosen.result.attrs["tokens_per_frame"]
    n = chosen.result.attrs["n"]
    assert n % per_frame not in (per_frame - 1, 0, 1) and chosen.result.attrs["options"]["n"] == n
    assert not any("confounded" in note for note in chosen.summary.notes), chosen.summary.notes
    excess = chosen.result["prefix_matching_excess"]
    xr.testing.assert_allclose(
        excess, chosen.result["prefix_matching"] - chosen.result["prefix_matching_control"]
    )
    row = chosen.summary.data["rows"][0]["prefix_matching_excess"]
    assert row["best"] == pytest.approx(float(excess.max())) and row["best"] == pytest.approx(
        row["raw"] - row["control"]
    )
    assert "prefix matching − control" in chosen.summary.columns
    asked = studies.induction("tiny", n=per_frame, batch=2)
    assert any(f"n = {per_frame}" in note and "confounded" in note for note in asked.summary.notes)


@pytest.mark.parametrize("seeds", [["1"], ["3"], ["4", "6"]])
def test_the_command_a_probing_page_gives_makes_the_same_numbers_again(tiny_store, capsys, tmp_path, seeds):
    import shlex

    out = tmp_path / "p.nc"
    code, _, err = run_cli(
        capsys, "probe", "--ckpt", "tiny", "--task", "motion", "--seeds", *seeds, "--out", str(out)
    )
    assert code == 0, err
    first = xr.open_dataset(out).load()
    words = shlex.split(first.attrs["command"])
    assert words[0] == "toto-lens", words
    code, _, err = run_cli(capsys, *words[1:])
    assert code == 0, f"the page's own command fails: {first.attrs['command']}: {err}"
    again = xr.open_dataset(out).load()
    assert list(again["seed"].values) == list(first["seed"].values), "the command must name the same seeds"
    xr.testing.assert_identical(again["val_score"], first["val_score"])
