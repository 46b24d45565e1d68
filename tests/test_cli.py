"""The command line as a user runs it: output, exit codes, one-line errors without tracebacks."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import run_cli

from toto_lens.checkpoints import CONFIG, WEIGHTS
from toto_lens.config import variants
from toto_lens.io import dict_attr

EXE = Path(sys.executable).with_name("toto-lens")


def test_variants_table_lists_every_variant(capsys):
    code, out, _ = run_cli(capsys, "variants")
    assert code == 0
    for name in variants():
        assert name in out, name
    assert "FFN width" in out and "context" in out and "params" in out


def test_variants_json(capsys):
    code, out, _ = run_cli(capsys, "variants", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and set(rows) == set(variants())
    assert (
        rows["toto-large"]["width"] == 1024
        and rows["toto-large"]["params"] == variants()["toto-large"].num_params()
    )


def test_init_then_info(capsys):
    code, out, _ = run_cli(capsys, "init", "--model", "toto-debug", "--name", "dbg")
    assert code == 0 and "dbg" in out
    code, out, _ = run_cli(capsys, "info", "--ckpt", "dbg", "--json")
    info = json.loads(out)
    assert code == 0
    assert info["params"] == variants()["toto-debug"].num_params()
    assert info["n_layers"] == 2 and info["vocab_size"] == 516 and len(info["sha256"]) == 64
    assert info["config"]["dim"] == 32 and info["training"]["steps"] == 0
    code, out, _ = run_cli(capsys, "info", "--ckpt", "dbg")
    assert code == 0 and info["sha256"] in out and "vocab_size" in out
    code, out, _ = run_cli(capsys, "checkpoints")
    assert out.split() == ["dbg"]


def test_init_refuses_to_overwrite(capsys):
    assert run_cli(capsys, "init", "--model", "toto-debug", "--name", "x")[0] == 0
    code, _, err = run_cli(capsys, "init", "--model", "toto-debug", "--name", "x")
    assert code == 2 and "already exists" in err and "--overwrite" in err
    assert run_cli(capsys, "init", "--model", "toto-debug", "--name", "x", "--overwrite")[0] == 0


def _one_line_error(code, err, *words):
    assert code == 2, f"exit code {code}, expected 2"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0], f"{w!r} missing from {lines[0]!r}"


def test_unknown_checkpoint(capsys):
    run_cli(capsys, "init", "--model", "toto-debug", "--name", "have-this")
    _one_line_error(
        *run_cli(capsys, "info", "--ckpt", "toto-large")[::2], "toto-large", "have-this", "toto-lens init"
    )


def test_unknown_variant(capsys):
    _one_line_error(
        *run_cli(capsys, "init", "--model", "toto-huge", "--name", "x")[::2], "toto-huge", "toto-large"
    )


def test_corrupted_files(capsys):
    run_cli(capsys, "init", "--model", "toto-debug", "--name", "c")
    folder = Path(os.environ["TOTO_LENS_CACHE"]) / "checkpoints" / "c"
    (folder / WEIGHTS).write_bytes((folder / WEIGHTS).read_bytes()[:100])
    _one_line_error(*run_cli(capsys, "info", "--ckpt", "c")[::2], str(folder / WEIGHTS), "truncated")
    (folder / CONFIG).write_text("not json")
    _one_line_error(*run_cli(capsys, "info", "--ckpt", "c")[::2], str(folder / CONFIG), "not valid JSON")


def test_usage_error_exit_code(capsys):
    code, _, err = run_cli(capsys, "info")
    assert code == 2 and "--ckpt" in err


def test_console_script_end_to_end(tmp_path):
    """The installed `toto-lens` script: a real process, its exit code and its stderr."""
    env = {**os.environ, "TOTO_LENS_CACHE": str(tmp_path)}
    ok = subprocess.run([EXE, "--version"], capture_output=True, text=True, env=env)
    assert ok.returncode == 0 and ok.stdout.startswith("toto-lens ")
    bad = subprocess.run([EXE, "info", "--ckpt", "nothing-here"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    assert "nothing-here" in bad.stderr


def test_help_does_not_import_torch():
    code = "import sys; from toto_lens.cli import app; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("cmd", [["--help"], ["variants", "--help"], ["info", "--help"], ["init", "--help"]])
def test_help(capsys, cmd):
    code, out, _ = run_cli(capsys, *cmd)
    assert code == 0 and "Usage" in out


def test_several_numbers_after_one_flag():
    from toto_lens.cli.app import expand_multi_values

    assert expand_multi_values(["ngrams", "--n", "1", "2", "3", "--frames", "32"]) == [
        "ngrams", "--n", "1", "--n", "2", "--n", "3", "--frames", "32",
    ]  # fmt: skip
    # A name after a multi-number flag is left for click to reject, numbers after other flags alone.
    assert expand_multi_values(["--lrs", "1e-3", "x", "--frames", "1", "2"]) == [
        "--lrs",
        "1e-3",
        "x",
        "--frames",
        "1",
        "2",
    ]


def test_an_error_line_reaches_stderr_in_one_write():
    """Under torchrun every rank writes to one stderr pipe; a line written in pieces (text, then newline)
    runs into another rank's line. The console entry point, stderr a pipe: one write() per error line."""
    code = (
        "import json, os\n"
        "writes = []\n"
        "real = os.write\n"
        "os.write = lambda fd, data: writes.append(data.decode()) or real(fd, data)\n"
        "from toto_lens.cli import main\n"
        "try:\n"
        "    main(['info', '--ckpt', 'no-such-checkpoint'])\n"
        "except SystemExit as e:\n"
        "    print(json.dumps({'writes': writes, 'code': e.code}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy())
    result = json.loads(done.stdout)
    assert result["code"] == 2, done.stdout + done.stderr
    writes = result["writes"]
    assert len(writes) == 1 and writes[0].startswith("error: ") and writes[0].endswith("\n"), writes
    assert writes[0].count("\n") == 1, "one line"


def test_init_like_mirrors_a_checkpoint_with_fresh_weights(capsys):
    """The untrained baseline of a run: same config, tokenizer and data, other weights; extract must need
    no --tokenizer or --data for it, or the baseline is not comparable to the run."""
    from extract_helpers import make_checkpoint

    from toto_lens import load_checkpoint, open_cache

    make_checkpoint("run", seed=1)
    code, out, err = run_cli(capsys, "init", "--like", "run", "--name", "run-init", "--seed", "3")
    assert code == 0 and "like run" in out, out + err
    run, base = load_checkpoint("run"), load_checkpoint("run-init")
    assert base.config == run.config and base.tokenizer == run.tokenizer
    assert all(torch.equal(base.tokenizer_state[k], v) for k, v in run.tokenizer_state.items())
    assert (
        base.training["config"]["data"] == "moving-digits" and base.training["like"]["sha256"] == run.sha256
    )
    weights = base.model.state_dict()
    assert any(not torch.equal(weights[k], v) for k, v in run.model.state_dict().items()), "weights are fresh"
    assert run_cli(capsys, "extract", "--ckpt", "run-init", "--clips", "4", "--batch-size", "4")[0] == 0
    assert dict_attr(open_cache("run-init").attrs, "dataset")["source"] == "moving-digits"


def test_init_needs_exactly_one_of_model_and_like(capsys):
    for args in ([], ["--model", "toto-debug", "--like", "x"]):
        code, _, err = run_cli(capsys, "init", "--name", "n", *args)
        assert code == 2 and "either --model VARIANT or --like CHECKPOINT" in err, err
