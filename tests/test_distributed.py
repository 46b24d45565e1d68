"""The same command under torchrun: 2 CPU processes (gloo) agree with one process on the same global batch."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from toto_lens import load_checkpoint
from toto_lens.train import TrainConfig, train

EXE = Path(sys.executable).with_name("toto-lens")
ARGS = [
    "train", "--model", "toto-debug", "--tokenizer", "kmeans-64", "--batch-size", "4", "--train-clips", "16",
    "--val-clips", "4", "--eval-every", "4", "--log-every", "2", "--warmup", "2", "--threads", "1", "--steps", "4",
]  # fmt: skip
SAME = TrainConfig(
    model="toto-debug", tokenizer="kmeans-64", batch_size=4, train_clips=16, val_clips=4, eval_every=4,
    log_every=2, warmup=2, threads=1, steps=4,
)  # fmt: skip


def torchrun(*extra, procs=2):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={procs}",
        str(EXE),
    ]
    return subprocess.run(
        cmd + ARGS + list(extra), capture_output=True, text=True, env=os.environ.copy(), timeout=300
    )


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_two_processes_agree_with_one(mode):
    single = train(SAME, "single")
    done = torchrun("--name", mode, *(["--fsdp"] if mode == "fsdp" else []))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("finished:") == 1, "only rank 0 may print the summary"
    one, two = load_checkpoint("single").model.state_dict(), load_checkpoint(mode).model.state_dict()
    for key in one:
        torch.testing.assert_close(two[key], one[key], atol=2e-5, rtol=1e-4, msg=f"{mode}: {key} differs")
    assert load_checkpoint(mode).training["world_size"] == 2
    distributed_val = load_checkpoint(mode).training["metrics"]["val_loss"]
    assert abs(distributed_val - single.metrics["val_loss"]) < 1e-4, "validation must cover the same clips"


@pytest.mark.slow
def test_batch_that_does_not_divide_over_processes():
    done = torchrun("--name", "odd", "--batch-size", "3")
    assert done.returncode != 0 and "exitcode: 2" in done.stderr, "each process must exit with the usage code"
    lines = [line for line in done.stderr.splitlines() if "error: " in line]
    assert any(
        line.startswith("error: a batch of 3 clips does not divide over 2 processes") for line in lines
    )
    assert any(line.startswith("[rank 1] error: a batch of 3") for line in lines), (
        "other ranks say who they are"
    )
