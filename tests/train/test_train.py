"""The trainer as a user runs it: checkpoints, logs, exact resume, crashes, divergence, bad input."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import run_cli

from toto_lens import load_checkpoint
from toto_lens.config import IMAGE_START_ID, VIDEO_START_ID
from toto_lens.errors import ConfigError
from toto_lens.tokenizers import load_tokenizer
from toto_lens.train import TrainConfig, train
from toto_lens.train.data import build_pools
from toto_lens.train.optim import lr_at

EXE = Path(sys.executable).with_name("toto-lens")
# Small enough for seconds on a CPU: a 2-layer model, 16 clips a source, kmeans with 64 codes.
TINY = TrainConfig(
    model="toto-debug", tokenizer="kmeans-64", steps=8, batch_size=4, train_clips=16, val_clips=4,
    eval_every=4, log_every=2, ckpt_every=4, warmup=2, threads=1,
)  # fmt: skip
TINY_ARGS = [
    "--model", "toto-debug", "--tokenizer", "kmeans-64", "--batch-size", "4", "--train-clips", "16",
    "--val-clips", "4", "--eval-every", "4", "--log-every", "2", "--warmup", "2", "--threads", "1",
]  # fmt: skip


def weights(name):
    return load_checkpoint(name).model.state_dict()


def test_train_writes_a_checkpoint_with_its_log(capsys):
    code, out, _ = run_cli(capsys, "train", *TINY_ARGS, "--steps", "8", "--name", "run")
    assert code == 0 and "finished" in out and "loss per frame" in out
    ckpt = load_checkpoint("run")
    assert ckpt.training["complete"] and ckpt.training["step"] == 8
    assert ckpt.tokenizer["kind"] == "kmeans" and "codebook" in ckpt.tokenizer_state
    assert ckpt.config.vocab_size == 64 + 4, "the model's vocabulary must follow the tokenizer"
    rows = [json.loads(line) for line in (ckpt.path / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6, 8]
    assert {"step", "tokens", "train_loss", "lr", "tokens_per_s"} <= set(rows[0])
    assert [("val_loss" in r) for r in rows] == [False, True, False, True]
    assert rows[-1]["tokens"] == 8 * 4 * 1025
    assert rows[-1]["train_loss"] < rows[0]["train_loss"], "eight steps of AdamW should lower the loss"
    code, out, _ = run_cli(capsys, "info", "--ckpt", "run", "--json")
    assert json.loads(out)["training"]["step"] == 8


def test_stopped_and_resumed_run_is_bitwise_the_uninterrupted_one():
    whole = train(TINY, "whole")
    half = train(TINY, "split", stop_at=4)
    assert not half.complete and half.step == 4
    assert not load_checkpoint("split").training["complete"]
    rest = train(TINY, "split")
    assert rest.complete and rest.step == 8
    a, b = weights("whole"), weights("split")
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs after resume"
    strip = lambda log: [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in log]  # noqa: E731
    assert strip(rest.log) == strip(whole.log), "a resumed run's log must read as one uninterrupted run"


def test_resume_refuses_other_settings_and_finished_runs(capsys):
    train(TINY, "r", stop_at=4)
    with pytest.raises(ConfigError, match="other settings \\(lr\\)"):
        train(TINY.replace(lr=1e-2), "r")
    train(TINY, "r")
    code, _, err = run_cli(capsys, "train", *TINY_ARGS, "--steps", "8", "--name", "r")
    assert code == 2 and "already exists" in err and "--overwrite" in err
    assert run_cli(capsys, "train", *TINY_ARGS, "--steps", "4", "--name", "r", "--overwrite")[0] == 0
    assert load_checkpoint("r").training["step"] == 4


def test_sigkill_leaves_the_last_checkpoint_loadable(tmp_path):
    args = [str(EXE), "train", *TINY_ARGS, "--steps", "400", "--ckpt-every", "2", "--name", "killed"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy())
    folder = Path(os.environ["TOTO_LENS_CACHE"]) / "checkpoints" / "killed"
    deadline = time.time() + 120
    while time.time() < deadline and not (folder / "config.json").exists():
        time.sleep(0.2)
    time.sleep(0.7)  # let it be somewhere in the middle of later steps and saves
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ckpt = load_checkpoint("killed")  # verifies the sha256: a half-written checkpoint would fail here
    step = ckpt.training["step"]
    assert 2 <= step < 400 and step % 2 == 0 and not ckpt.training["complete"]
    leftovers = [p.name for p in folder.parent.iterdir() if p.name.startswith(".killed.tmp")]
    assert len(leftovers) <= 1, "at most the one temporary folder the kill interrupted"
    # The same command carries on from there.
    resumed = train(TINY.replace(steps=400, ckpt_every=2), "killed", stop_at=step + 2)
    assert resumed.step == step + 2 and load_checkpoint("killed").training["step"] == step + 2


def test_divergence_stops_with_the_step_and_keeps_the_last_checkpoint(capsys):
    code, _, err = run_cli(
        capsys, "train", *TINY_ARGS, "--steps", "50", "--ckpt-every", "1", "--lr", "1e4", "--warmup", "0", "--name", "nan"
    )  # fmt: skip
    assert code == 3, "divergence is not a usage error, but must exit non-zero"
    assert "diverged at step" in err and "last good checkpoint" in err and "Traceback" not in err
    step = int(err.split("diverged at step ")[1].split()[0])
    kept = load_checkpoint("nan")
    assert kept.training["step"] == step - 1
    assert all(torch.isfinite(p).all() for p in kept.model.parameters())


@pytest.mark.parametrize(
    "args, words",
    [
        (["--model", "toto-huge"], "unknown model variant 'toto-huge'"),
        (["--data", "kinetics"], "unknown data 'kinetics'"),
        (["--steps", "0"], "steps must be a positive integer"),
        (["--dtype", "float8"], "dtype must be one of"),
        (["--data", "moving-digits=-1"], "positive weight"),
        (["--micro-batch", "3"], "--micro-batch 3 must divide"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(capsys, args, words):
    code, _, err = run_cli(capsys, "train", *TINY_ARGS, "--steps", "2", "--name", "bad", *args)
    assert code == 2 and err.startswith("error: ") and words in err and err.count("\n") == 1, err


def test_missing_name(capsys):
    code, _, err = run_cli(capsys, "train", "--steps", "2")
    assert code == 2 and "--name" in err


def test_mixed_batches_have_exact_proportions_and_their_own_start_tokens():
    tok = load_tokenizer("kmeans-64")
    pools = build_pools(TINY.replace(data="moving-digits=0.75,image-digits=0.25"), tok)
    batch = pools.batch(seed=0, step=3, size=8)
    assert batch.shape == (8, 1026)
    assert (batch[:, 0] == VIDEO_START_ID).sum() == 6 and (batch[:, 0] == IMAGE_START_ID).sum() == 2
    assert np.array_equal(batch, pools.batch(seed=0, step=3, size=8)), (
        "a step's batch is a function of (seed, step)"
    )
    assert not np.array_equal(batch, pools.batch(seed=0, step=4, size=8))


def test_schedule_warms_up_then_decays_to_the_floor():
    cfg = TrainConfig(lr=1e-3, warmup=10, steps=110, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(1e-4) and lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(60, cfg) == pytest.approx(0.55e-3) and lr_at(110, cfg) == pytest.approx(1e-4)
    lrs = [lr_at(s, cfg) for s in range(10, 110)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False)), "cosine decay must not increase"


def test_the_ctrl_c_note_names_the_checkpoint_a_resume_with_free_settings_would_continue():
    from toto_lens.cli.train import interrupt_note

    train(TINY, "noted", stop_at=4)  # a checkpoint at step 4, unfinished
    for cfg in (TINY, TINY.replace(log_every=1, threads=2)):  # cadence and threads do not change the run
        note = interrupt_note(cfg, "noted", overwrite=False)
        assert "kept the checkpoint of step 4 of 8" in note and "to resume" in note, note
    note = interrupt_note(TINY.replace(lr=TINY.lr * 2), "noted", overwrite=False)
    assert note.startswith("no checkpoint of this run"), f"another learning rate is another run: {note}"
