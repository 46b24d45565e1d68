"""The same command under torchrun: 2 CPU processes (gloo) agree with one process on the same global batch,
and an FSDP run resumes exactly from its sharded (DCP) checkpoint, which holds one shard file per rank."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from toto_lens import load_checkpoint
from toto_lens.checkpoints import read_extra
from toto_lens.train import TrainConfig, list_snapshots, train
from toto_lens.train.state import dcp_path, latest_sharded, read_sharded

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


@pytest.fixture(scope="module")
def fsdp_run(cache_root):
    """A whole two-process FSDP run, sharded checkpoints and snapshots every 2 steps: (its folder, the
    torchrun result)."""
    with cache_root("fsdp") as root:
        done = torchrun("--name", "fsdp", "--fsdp", "--ckpt-every", "2", "--snapshot-every", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    return root / "checkpoints" / "fsdp", done


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_two_processes_agree_with_one(mode, request):
    single = train(SAME, "single")
    if mode == "fsdp":
        path, done = request.getfixturevalue("fsdp_run")
    else:
        path, done = mode, torchrun("--name", mode)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("finished:") == 1, "only rank 0 may print the summary"
    one, two = load_checkpoint("single").model.state_dict(), load_checkpoint(path).model.state_dict()
    for key in one:
        torch.testing.assert_close(two[key], one[key], atol=2e-5, rtol=1e-4, msg=f"{mode}: {key} differs")
    assert load_checkpoint(path).training["world_size"] == 2
    distributed_val = load_checkpoint(path).training["metrics"]["val_loss"]
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


@pytest.mark.slow
def test_fsdp_run_stopped_and_resumed_from_its_shards_ends_where_the_whole_run_ends(fsdp_run):
    whole, _ = fsdp_run
    stopped = torchrun(
        "--name", "split", "--fsdp", "--ckpt-every", "2", "--stop-at", "2", "--snapshot-every", "2"
    )
    assert stopped.returncode == 0, stopped.stderr[-2000:]
    folder = Path(os.environ["TOTO_LENS_CACHE"]) / "checkpoints" / "split"
    shards = latest_sharded(folder)
    assert shards == dcp_path(folder) / "step-2", "the stop at step 2 must leave its sharded checkpoint"
    files = {p.name for p in shards.iterdir()}
    assert {"__0_0.distcp", "__1_0.distcp", ".metadata"} <= files, f"one shard file per rank: {files}"
    assert not folder.exists(), "mid-run, FSDP writes no full checkpoint (gathered to rank 0) unless asked"
    resumed = torchrun("--name", "split", "--fsdp", "--ckpt-every", "2", "--snapshot-every", "2")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    said = "".join(resumed.stdout.split())  # rich wraps long lines
    assert "".join(f"resuming {shards} at step 2".split()) in said, resumed.stdout[-2000:]
    a, b = load_checkpoint(whole), load_checkpoint(folder)
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key]), f"{key} differs after resuming from the shards"
    assert b.training["metrics"]["val_loss"] == a.training["metrics"]["val_loss"], "same weights, same loss"
    strip = lambda path: [  # noqa: E731
        {k: v for k, v in json.loads(line).items() if k != "tokens_per_s"}
        for line in (path / "train_log.jsonl").read_text().splitlines()
    ]
    assert strip(folder) == strip(whole), "a resumed run's log must read as one uninterrupted run"
    pairs = list(zip(list_snapshots(whole), list_snapshots(folder), strict=True))
    assert [(s, t) for (s, _), (t, _) in pairs] == [(0, 0), (2, 2), (4, 4)], "snapshots at 0, 2 and 4"
    for (step, x), (_, y) in pairs:  # gathered from the shards of both processes, before and after a resume
        x, y = load_checkpoint(x).model.state_dict(), load_checkpoint(y).model.state_dict()
        assert all(torch.equal(x[k], y[k]) for k in x), f"the snapshots at step {step} differ after a resume"
    last = load_checkpoint(list_snapshots(whole)[-1][1]).model.state_dict()
    assert all(torch.equal(last[k], v) for k, v in a.model.state_dict().items()), (
        "step 4 is the final weights"
    )


@pytest.mark.slow
def test_full_checkpoint_at_the_end_equals_the_gathered_shards(fsdp_run):
    folder, _ = fsdp_run
    ckpt = load_checkpoint(folder)
    optimizer: dict = {}
    for key, value in read_extra(folder, "optimizer").items():
        if key.startswith("state."):
            name, _, field = key[len("state.") :].rpartition(".")
            optimizer.setdefault(name, {})[field] = value
    full = {"model": ckpt.model.state_dict(), "optimizer": optimizer, "step": torch.tensor(0)}
    shards = latest_sharded(folder)
    assert shards.name == "step-4" and {"__0_0.distcp", "__1_0.distcp"} <= {p.name for p in shards.iterdir()}
    gathered = read_sharded(shards, full)  # both ranks' shards, read into zeros in this one process
    assert int(gathered["step"]) == ckpt.training["step"] == 4, "both must hold the last step"
    for key, value in full["model"].items():
        assert torch.equal(gathered["model"][key], value), f"weights {key}: the full and sharded ones differ"
    for name, fields in optimizer.items():
        for field, value in fields.items():
            assert torch.equal(gathered["optimizer"][name][field], value), f"AdamW {name}.{field} differs"
