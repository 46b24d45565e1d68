"""Where a study's results go: an output that cannot be written is refused before any work, a write that
fails after the work keeps the result somewhere and says where, bad options fail at once, and every page
says how to make it again."""

import time
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
import xarray as xr
from helpers import run_cli, run_cli_readonly

from toto_lens.paths import cache_root
from toto_lens.studies.base import Study, StudyError, Summary, command_line, output_paths


@pytest.mark.parametrize("command", ["probe", "redundancy"])
def test_an_out_in_a_read_only_folder_fails_in_one_line_before_any_work(tmp_path, command):
    readonly = tmp_path / "shared"
    readonly.mkdir()
    out = readonly / "results" / "curves.nc"
    # No checkpoint or store exists: a command that looked for it first would fail about that instead.
    started = time.perf_counter()
    done = run_cli_readonly(readonly, command, "--ckpt", "nowhere", "--out", str(out))
    took = time.perf_counter() - started
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot write"), done.stderr
    assert str(readonly / "results") in lines[0] and "--out" in lines[0], "name the place and the option"
    assert "Traceback" not in done.stderr and not (readonly / "results").exists()
    assert took < 30, f"refused only after {took:.0f} s"


def small_study() -> Study:
    result = xr.Dataset(
        {"loss": ("frame", np.array([3.0, 1.5, 1.4]))},
        attrs={"study": "redundancy", "checkpoint": "demo", "dataset": "moving-digits-val",
               "command": command_line("redundancy", "--ckpt", "demo")},
    )  # fmt: skip
    fig = go.Figure(go.Scatter(y=[3.0, 1.5, 1.4]), layout={"title": {"text": "Frame-wise loss"}})
    return Study("redundancy", result, [fig], Summary("t", ["a"], [["1"]], {}))


def test_a_save_that_fails_after_the_work_keeps_the_result_and_says_where(tmp_path):
    study = small_study()
    blocked = tmp_path / "was-a-folder"
    blocked.write_text("a file now stands where the output folder was")  # the place broke meanwhile
    with pytest.raises(StudyError) as caught:
        study.save(blocked / "r.nc")
    message = str(caught.value)
    assert "\n" not in message and str(blocked / "r.nc") in message and "kept in" in message, message
    kept = message.split("kept in ")[1].split(" and ")
    data = next(p for p in kept if p.endswith("r.nc"))
    page = next(p for p in kept if p.endswith("r.html"))
    xr.testing.assert_allclose(xr.open_dataset(data)["loss"].load(), study.result["loss"])
    assert "Frame-wise loss" in Path(page).read_text(encoding="utf-8"), "the figure is kept too"


def test_saved_pages_and_numbers_carry_the_command_that_regenerates_them(tmp_path):
    study = small_study()
    written = study.save(tmp_path / "out dir" / "r.html")
    page = written["figure"].read_text(encoding="utf-8")
    expected = f"toto-lens redundancy --ckpt demo --out '{tmp_path / 'out dir' / 'r.html'}'"
    assert xr.open_dataset(written["data"]).attrs["command"] == expected
    assert "<title>Frame-wise loss</title>" in page and "Regenerate: <code>toto-lens redundancy" in page
    assert "Made from: redundancy of checkpoint demo on moving-digits-val" in page


def test_command_line_repeats_flags_and_lists_numbers_as_the_cli_reads_them():
    line = command_line("probe", "--ckpt", ["a", "b c"], "--seeds", [0, 1], "--cache", None, "--json", True)
    assert line == "toto-lens probe --ckpt a --ckpt 'b c' --seeds 0 1 --json"


def test_output_paths_makes_the_folders_it_checks(tmp_path):
    data, figure = output_paths(tmp_path / "a" / "b" / "r.zarr")
    assert (data.name, figure.name) == ("r.zarr", "r.html") and (tmp_path / "a" / "b").is_dir()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--n", "0"], "must be positive"),
        (["--n", "1", "--data", "no-such-source"], "unknown data"),
        (["--n", "1", "--split", "sideways"], "split"),
    ],
)
def test_bad_ngram_options_fail_within_seconds_before_any_tokenizer_is_fitted(tmp_path, capsys, args, words):
    # kmeans-48 is in no cache: fitting it would take tens of seconds and leave its folder behind.
    started = time.perf_counter()
    code, _, err = run_cli(
        capsys, "ngrams", "--tokenizer", "kmeans-48", *args, "--out", str(tmp_path / "n.html")
    )
    took = time.perf_counter() - started
    assert code == 2 and err.startswith("error: ") and words in err, err
    assert took < 3, f"failed only after {took:.1f} s"
    assert not (cache_root() / "tokenizers" / "kmeans-48").exists(), "no tokenizer was fitted"


def test_an_ngram_longer_than_a_frame_fails_before_the_frames_are_tokenized(tmp_path, capsys):
    from toto_lens.tokenizers import load_tokenizer

    rows, cols = load_tokenizer("kmeans-64").grid
    started = time.perf_counter()
    code, _, err = run_cli(capsys, "ngrams", "--tokenizer", "kmeans-64", "--n", str(rows * cols + 1),
                           "--out", str(tmp_path / "n.html"))  # fmt: skip
    assert code == 2 and f"n ≤ {rows * cols}" in err, err
    assert time.perf_counter() - started < 3, "10,000 frames were tokenized first"
