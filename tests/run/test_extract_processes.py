"""Extraction across processes: a SIGKILLed run resumes to the same store; torchrun ranks share one store."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from extract_helpers import make_checkpoint

from toto_lens import open_cache
from toto_lens.run import extract
from toto_lens.store.schema import REPRODUCIBLE

EXE = Path(sys.executable).with_name("toto-lens")


def assert_same_store(a, b):
    """Equal stores: integers exactly, floats within the documented bound (docs/cache-schema.md)."""
    a, b = open_cache(path=a), open_cache(path=b)
    assert set(a.data_vars) == set(b.data_vars)
    for name in a.data_vars:
        if a[name].dtype.kind in "iu":
            np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=f"{name} differs")
        else:
            rtol, atol = REPRODUCIBLE[str(a[name].dtype)]
            np.testing.assert_allclose(a[name].values, b[name].values, rtol=rtol, atol=atol, err_msg=name)
    for name in ("digit", "motion", "object_position"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=f"label {name} differs")


@pytest.mark.slow
def test_sigkill_then_the_same_command_gives_the_uninterrupted_store(tmp_path):
    make_checkpoint("big", model="toto-small")
    args = ["extract", "--ckpt", "big", "--clips", "24", "--batch-size", "1", "--acts", "pooled,frame"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed = tmp_path / "killed.zarr"
    proc = subprocess.Popen([str(EXE), *args, "--out", str(killed)], env=env, stderr=subprocess.PIPE)
    done = 0
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        try:
            done = int(zarr.open_group(str(killed), mode="r")["complete"][:].sum())
        except Exception:  # not created yet
            done = 0
        if done >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()[-500:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 3 <= done < 24, f"killed after {done} clips, want a run stopped half-way"
    again = subprocess.run([str(EXE), *args, "--out", str(killed)], env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert "already there" in again.stdout, "the second run must continue, not start over"
    whole = tmp_path / "whole.zarr"
    done_whole = subprocess.run(
        [str(EXE), *args, "--out", str(whole)], env=env, capture_output=True, text=True
    )
    assert done_whole.returncode == 0, done_whole.stderr
    assert_same_store(whole, killed)


@pytest.mark.slow
def test_two_torchrun_processes_write_the_single_process_store(tmp_path):
    make_checkpoint("ex")
    opts = dict(clips=10, batch_size=2, acts=("pooled", "frame", "token"), token_clips=5, attn=("frame",))
    extract("ex", out=tmp_path / "one.zarr", dtype="float32", **opts)
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(EXE),
        "extract", "--ckpt", "ex", "--clips", "10", "--batch-size", "2", "--acts", "pooled,frame,token",
        "--token-clips", "5", "--attn", "frame", "--dtype", "float32", "--out", str(tmp_path / "two.zarr"),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy(), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("complete;") == 1, f"only rank 0 may print the summary: {done.stdout}"
    assert_same_store(tmp_path / "one.zarr", tmp_path / "two.zarr")


@pytest.mark.slow
def test_ctrl_c_says_what_is_kept_and_the_same_command_completes(tmp_path):
    """SIGINT once the first batch is written: the last line says how many batches are kept where and how
    to resume, exit code 130; the same command then finishes the store without starting over."""
    make_checkpoint("ex")
    out = tmp_path / "s.zarr"
    args = [str(EXE), "extract", "--ckpt", "ex", "--clips", "40", "--batch-size", "1", "--acts", "pooled"]
    args += ["--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline, done = time.time() + 120, 0
    while time.time() < deadline and proc.poll() is None and done < 1:
        try:
            done = int(zarr.open_group(str(out), mode="r")["complete"][:].sum())
        except Exception:  # not created yet
            time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before it could be interrupted: {proc.stderr.read()[-500:]}"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=180)  # a busy machine: the last step and its save take their time
    last = err.strip().splitlines()[-1]
    assert proc.returncode == 130, err[-1000:]
    kept = int(zarr.open_group(str(out), mode="r")["complete"][:].sum())
    assert 1 <= kept < 40
    assert last == f"interrupted: kept {kept} of 40 batches in {out}; run the same command to resume", last
    again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and f"{kept} already there" in again.stdout, again.stdout + again.stderr
    assert open_cache(path=out).sizes["clip"] == 40
