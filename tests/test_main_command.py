"""The main command as the README writes it: `init --model V --name V`, then `extract --ckpt V --layers all`.

A variant's untrained checkpoint records a tokenizer whose codes and clip layout fit the model and the
data it stands for, so extraction needs no further option. The paper-sized toto-large is checked with
a dry run (its 512 clips take hours on a CPU; `--clips 2` measured ≈ 0.02 clips/s on 2 busy cores).
"""

import json
import time

import pytest
from helpers import run_cli

from toto_lens import load_checkpoint


def test_an_unknown_variant_named_checkpoint_suggests_that_variant(capsys):
    code, _, err = run_cli(capsys, "extract", "--ckpt", "toto-large", "--layers", "all")
    assert code == 2 and "`toto-lens init --model toto-large --name toto-large`" in err, err
    code, _, err = run_cli(capsys, "extract", "--ckpt", "my-run", "--layers", "all")
    assert code == 2 and "`toto-lens init --model toto-tiny --name my-run`" in err, err


def test_init_then_extract_runs_as_written(capsys):
    t0 = time.perf_counter()
    code, out, err = run_cli(capsys, "init", "--model", "toto-debug", "--name", "toto-debug")
    assert (
        code == 0 and "tokenizer: random-512" in out and "data: moving-digits=0.8,image-digits=0.2" in out
    ), out + err
    code, out, err = run_cli(capsys, "extract", "--ckpt", "toto-debug", "--layers", "all", "--clips", "2")
    seconds = time.perf_counter() - t0
    assert code == 0 and "moving-digits-val.zarr: 2 clips" in out and "complete" in out, out + err
    ckpt = load_checkpoint("toto-debug")
    assert ckpt.tokenizer["vocab_size"] == ckpt.config.num_codes == 512 and ckpt.tokenizer["grid"] == [8, 8]
    code, out, err = run_cli(capsys, "info", "--ckpt", "toto-debug", "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["tokenizer_summary"].startswith("random-512, kind random_codebook, 512 codes")
    assert info["data"] == "moving-digits=0.8,image-digits=0.2"
    print(f"init + extract --clips 2 of toto-debug: {seconds:.1f} s")


def test_init_can_record_no_tokenizer_or_another_one(capsys):
    assert run_cli(capsys, "init", "--model", "toto-debug", "--name", "bare", "--tokenizer", "none")[0] == 0
    assert load_checkpoint("bare").tokenizer is None
    code, _, err = run_cli(
        capsys, "init", "--model", "toto-debug", "--name", "big", "--tokenizer", "random-4096"
    )
    assert code == 2 and "4096 codes but toto-debug holds 512" in err, err


@pytest.mark.slow
def test_toto_large_init_then_extract_dry_run(capsys):
    t0 = time.perf_counter()
    code, out, err = run_cli(capsys, "init", "--model", "toto-large", "--name", "toto-large")
    t1 = time.perf_counter()
    assert (
        code == 0
        and "tokenizer: random-8192-p2, kind random_codebook, 8,192 codes, 2×2 patches, 16×16" in out
    ), out + err
    code, out, err = run_cli(capsys, "extract", "--ckpt", "toto-large", "--layers", "all", "--dry-run")
    print(f"init toto-large: {t1 - t0:.1f} s; extract --dry-run: {time.perf_counter() - t1:.1f} s")
    assert code == 0 and "512×4098" in out and "512×17×1024" in out, out + err
