"""Bad arguments are answered at once, before any tokenizer fit, rendering or model building.

Each case runs the command in-process and measures it: a mistyped source used to cost 79 s of k-means
before its error. The bound (5 s) is generous for a busy machine; the measured time is printed.
"""

import os
import time

import pytest
from helpers import run_cli, run_cli_readonly

FAST_S = 5.0

TRAIN = ["train", "--name", "ff", "--model", "toto-debug", "--train-clips", "16", "--val-clips", "4"]


@pytest.mark.parametrize(
    "args, words",
    [
        ([*TRAIN, "--data", "moving-digitz"], "unknown data 'moving-digitz'; choose one of: moving-digits, image-digits"),
        ([*TRAIN, "--tokenizer", "kmeans512"], "no tokenizer 'kmeans512'"),
        ([*TRAIN, "--tokenizer", "kmeans-4096", "--model", "toto-huge"], "unknown model variant 'toto-huge'"),
        ([*TRAIN, "--tokenizer", "kmeans-4096", "--width", "51"], "dim 51 is not divisible by n_heads"),
        ([*TRAIN, "--tokenizer", "kmeans-4096", "--data", "moving-digits=0.5,nope=0.5"], "unknown data 'nope'"),
        (["train", "--name", "", "--tokenizer", "kmeans-4096"], "--name '' names no checkpoint"),
        (["init", "--model", "toto-large", "--name", "x", "--tokenizer", "dvae-8k"], "no tokenizer 'dvae-8k'"),
        (["init", "--model", "toto-large", "--name", "x", "--data", "kinetics"], "unknown data 'kinetics'"),
        (["init", "--model", "toto-huge", "--name", "x"], "unknown model variant 'toto-huge'"),
        (["tokenizer", "fit", "--kind", "kmeans", "--vocab", "8192", "--patch", "5", "--out", "t"], "--patch 5 does not divide"),
        (["tokenizer", "fit", "--kind", "dvae", "--vocab", "8192", "--out", "t"], "unknown tokenizer kind 'dvae'"),
        (["tokenizer", "fit", "--kind", "kmeans", "--vocab", "8192", "--from", "random-16", "--out", "t"], "use it with --kind random"),
        (["data", "preview", "--out", "clips.jpg"], "written as .png, .gif or .html"),
        (["data", "preview", "--out", "clips.png", "--data", "moving-digitz"], "unknown data 'moving-digitz'"),
        (["data", "materialise", "--out", "m", "--data", "moving-digitz"], "unknown data 'moving-digitz'"),
    ],
)  # fmt: skip
def test_bad_arguments_fail_at_once_in_one_line(capsys, args, words):
    t0 = time.perf_counter()
    code, _, err = run_cli(capsys, *args)
    seconds = time.perf_counter() - t0
    print(f"{' '.join(args)}: {seconds:.2f} s")
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and words in err, err
    assert seconds < FAST_S, f"a bad argument took {seconds:.1f} s to answer: something ran before the check"


def test_weights_that_do_not_sum_to_one_are_normalised_with_a_note(capsys):
    args = [*TRAIN, "--tokenizer", "kmeans-16", "--steps", "1", "--batch-size", "2", "--eval-every", "1"]
    code, out, err = run_cli(capsys, *args, "--data", "moving-digits=0.8,image-digits=0.5")
    assert code == 0, err
    assert "weights sum to 1.3, not 1; normalised to moving-digits=0.615,image-digits=0.385" in out, out


def test_train_refuses_an_unwritable_cache_at_once(tmp_path):
    readonly = tmp_path / "ro"
    (readonly / "cache").mkdir(parents=True)
    env = {**os.environ, "TOTO_LENS_CACHE": str(readonly / "cache")}
    t0 = time.perf_counter()
    done = run_cli_readonly(readonly, *TRAIN, "--tokenizer", "kmeans-4096", env=env)
    seconds = time.perf_counter() - t0
    print(f"train into a read-only cache: {seconds:.2f} s (a child process, imports included)")
    err = done.stderr
    assert done.returncode == 2 and err.startswith("error: cannot write") and err.count("\n") == 1, err
    assert "TOTO_LENS_CACHE" in err and "--name" in err, "the message must say how to choose another place"
    assert seconds < 3 * FAST_S, "an unwritable checkpoint folder must be refused before the tokenizer fit"


def test_data_preview_refuses_an_unwritable_out_before_rendering(tmp_path):
    readonly = tmp_path / "ro"
    readonly.mkdir()
    t0 = time.perf_counter()
    done = run_cli_readonly(readonly, "data", "preview", "--out", str(readonly / "clips.gif"), "--n", "64")
    seconds = time.perf_counter() - t0
    print(f"data preview to a read-only folder: {seconds:.2f} s (a child process, imports included)")
    err = done.stderr
    assert done.returncode == 2 and err.startswith("error: cannot write") and "--out" in err, err
    assert err.count("\n") == 1 and not (readonly / "clips.gif").exists()
    assert seconds < 3 * FAST_S
