"""Named tokenizers, `toto-lens tokenizer fit` and `toto-lens ngrams`, as a user runs them."""

import json

import numpy as np
import pytest
from helpers import run_cli

from toto_lens.tokenizers import TokenizerError, fit_tokenizer, load_tokenizer, save_tokenizer
from toto_lens.tokenizers.named import tokenizers_dir


def test_named_tokenizer_is_fitted_once_then_loaded():
    tok = load_tokenizer("kmeans-32")
    assert (tokenizers_dir() / "kmeans-32" / "tokenizer.json").is_file(), "the fit must be cached"
    again = load_tokenizer("kmeans-32")
    assert np.array_equal(again.codebook, tok.codebook) and again.vocab_size == 32 and tok.grid == (8, 8)
    assert np.array_equal(fit_tokenizer("kmeans", 32).codebook, tok.codebook), (
        "named fits must be deterministic"
    )


def test_random_codebooks_of_any_size_share_one_projection():
    small, large = load_tokenizer("random-16"), load_tokenizer("random-4096")
    assert np.array_equal(small.projection, large.projection) and large.vocab_size == 4096


def test_unknown_tokenizer_name():
    with pytest.raises(TokenizerError, match="no tokenizer 'dvae-8k'.*kmeans-N or random-N"):
        load_tokenizer("dvae-8k")


def test_fit_command_reports_error_and_usage(capsys, tmp_path):
    out = tmp_path / "km"
    code, stdout, _ = run_cli(
        capsys, "tokenizer", "fit", "--kind", "kmeans", "--vocab", "48", "--out", str(out), "--json"
    )
    report = json.loads(stdout)
    assert code == 0 and (out / "tokenizer.safetensors").is_file()
    assert report["vocab_size"] == 48 and 0 < report["mse"] < 0.02 and report["codebook_usage"] > 0.5
    assert report["codes_used"] + report["dead_codes"] == 48
    code, stdout, _ = run_cli(
        capsys, "tokenizer", "fit", "--kind", "kmeans", "--vocab", "48", "--out", str(out)
    )
    assert code == 2, "an existing tokenizer must not be overwritten silently"


def test_random_vocabulary_changes_without_refit(capsys, tmp_path):
    base = tmp_path / "r64"
    assert (
        run_cli(capsys, "tokenizer", "fit", "--kind", "random", "--vocab", "64", "--out", str(base))[0] == 0
    )
    code, stdout, _ = run_cli(
        capsys, "tokenizer", "fit", "--kind", "random", "--vocab", "2048", "--from", str(base),
        "--out", str(tmp_path / "r2048"), "--json",
    )  # fmt: skip
    assert code == 0 and json.loads(stdout)["vocab_size"] == 2048
    assert np.array_equal(load_tokenizer(tmp_path / "r2048").projection, load_tokenizer(base).projection)


@pytest.mark.parametrize(
    "args, words",
    [
        (["--kind", "vqgan", "--vocab", "8"], "unknown tokenizer kind 'vqgan'"),
        (["--kind", "kmeans", "--vocab", "0"], "vocab"),
        (["--kind", "kmeans", "--vocab", "8", "--from", "kmeans-8"], "--from"),
    ],
)
def test_fit_bad_input(capsys, tmp_path, args, words):
    code, _, err = run_cli(capsys, "tokenizer", "fit", *args, "--out", str(tmp_path / "t"))
    assert code == 2 and err.startswith("error: ") and words in err and "Traceback" not in err


def test_ngrams_command(capsys, tmp_path):
    out = tmp_path / "ngrams.html"
    code, stdout, _ = run_cli(
        capsys, "ngrams", "--tokenizer", "kmeans-32", "--tokenizer", "random-16", "--n", "1", "2", "3",
        "--frames", "64", "--out", str(out), "--json",
    )  # fmt: skip
    result = json.loads(stdout)
    assert code == 0 and result["frames"] == 64
    assert {(r["tokenizer"], r["n"]) for r in result["rows"]} == {
        (t, n) for t in ("kmeans-32", "random-16") for n in (1, 2, 3)
    }
    for r in result["rows"]:
        assert r["distinct"] <= min(r["possible"], 64 * (64 - r["n"] + 1))
    html = out.read_text()
    assert html.count("Plotly.newPlot") == 4, "one rank plot per n and one summary"


def test_ngrams_rejects_stray_arguments(capsys, tmp_path):
    code, _, err = run_cli(
        capsys, "ngrams", "--tokenizer", "kmeans-32", "random-16", "--out", str(tmp_path / "x.html")
    )
    assert code == 2 and "random-16" in err


def test_tokenizer_for_other_frames_is_refused(capsys, tmp_path):
    small = np.random.default_rng(0).random((20, 16, 16), dtype=np.float32)
    save_tokenizer(fit_tokenizer("kmeans", 8, frames=small), tmp_path / "t16")
    code, _, err = run_cli(
        capsys,
        "ngrams",
        "--tokenizer",
        str(tmp_path / "t16"),
        "--frames",
        "16",
        "--out",
        str(tmp_path / "x.html"),
    )
    assert code == 2 and err.startswith("error: ") and "16" in err and "32" in err


def test_named_fit_is_redone_when_the_bundled_data_changes():
    first = load_tokenizer("kmeans-24")
    record = tokenizers_dir() / "kmeans-24" / "fit_data.json"
    specs = json.loads(record.read_text())
    assert specs[0]["name"] == "moving-digits" and "background" in specs[0], "the record names the fit's data"
    specs[0]["background"] = 0.0  # as if fitted by a release whose clips had black backgrounds
    record.write_text(json.dumps(specs))
    (tokenizers_dir() / "kmeans-24" / "tokenizer.safetensors").write_bytes(b"stale")  # would fail to load
    again = load_tokenizer("kmeans-24")
    assert (
        np.array_equal(again.codebook, first.codebook)
        and json.loads(record.read_text())[0]["background"] == 0.2
    )
