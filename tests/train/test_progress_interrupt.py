"""What a user sees of long preparation (tokenizer fits, tokenizing the pools) and of Ctrl-C in training."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from toto_lens import load_checkpoint
from toto_lens.tokenizers import fit_tokenizer, load_tokenizer
from toto_lens.train import TrainConfig
from toto_lens.train.data import build_pools

EXE = Path(sys.executable).with_name("toto-lens")
TINY_ARGS = [
    "--model", "toto-debug", "--tokenizer", "kmeans-64", "--batch-size", "4", "--train-clips", "16",
    "--val-clips", "4", "--eval-every", "4", "--log-every", "2", "--warmup", "2", "--threads", "1",
]  # fmt: skip


def collect():
    events = []
    return events, events.append


def test_a_kmeans_fit_reports_its_seeding_and_its_iterations():
    events, progress = collect()
    fit_tokenizer("kmeans", 48, progress=progress, name="kmeans-48")
    tasks = {e.task for e in events}
    assert tasks == {"fit kmeans-48"}, tasks
    said = [e.message for e in events if e.message]
    assert said[0].startswith("rendering 4,096 frames") and any("Lloyd" in m for m in said), said
    assert said[-1] == "done" and any(m.startswith("k-means converged after") for m in said), said
    steps = [e for e in events if not e.message]
    assert steps[-1].done == steps[-1].total == 48 and steps[-1].unit == "codes seeded"
    assert len(steps) >= 10, "the seeding must be reported as it goes, not once at the end"


def test_tokenizing_the_training_pools_reports_each_source():
    events, progress = collect()
    cfg = TrainConfig(model="toto-debug", tokenizer="kmeans-64", train_clips=80, val_clips=4, data_seed=11)
    build_pools(cfg, load_tokenizer("kmeans-64"), progress=progress)
    done = {e.task: (e.done, e.total) for e in events if not e.message}
    assert done == {
        "tokenize moving-digits train": (80, 80), "tokenize moving-digits val": (4, 4),
        "tokenize image-digits train": (80, 80), "tokenize image-digits val": (4, 4),
    }, done  # fmt: skip
    chunks = [e.done for e in events if e.task == "tokenize moving-digits train"]
    assert chunks == [64, 80], "each chunk of clips is reported as it is tokenized"
    events.clear()
    build_pools(cfg, load_tokenizer("kmeans-64"), progress=progress)  # now from the token cache
    assert all("read from" in e.message for e in events) and len(events) == 4, events


def test_ctrl_c_says_which_checkpoint_is_kept_and_how_to_resume():
    args = [str(EXE), "train", *TINY_ARGS, "--steps", "400", "--ckpt-every", "2", "--name", "ctrlc"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    folder = Path(os.environ["TOTO_LENS_CACHE"]) / "checkpoints" / "ctrlc"
    deadline = time.time() + 180
    while time.time() < deadline and not (folder / "config.json").exists() and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=180)  # a busy machine: the last step and its save take their time
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    found = re.fullmatch(
        r"interrupted: kept the checkpoint of step (\d+) of 400 in (.+); run the same command again to "
        r"resume from it",
        last,
    )
    assert found, last
    assert "Traceback" not in err
    kept = load_checkpoint("ctrlc").training["step"]
    assert int(found[1]) == kept and Path(found[2]) == folder, (last, kept)
