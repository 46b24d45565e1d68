"""Snapshots (`train --snapshot-every N`): the weights at fixed steps, each a checkpoint of its own."""

import json
import shutil

import torch
from helpers import run_cli
from test_train import TINY, TINY_ARGS

from toto_lens import load_checkpoint
from toto_lens.checkpoints import checkpoint_path, save_checkpoint
from toto_lens.model import Toto
from toto_lens.train import list_snapshots, train


def same_weights(a, b) -> bool:
    a, b = load_checkpoint(a).model.state_dict(), load_checkpoint(b).model.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_snapshots_hold_the_weights_at_their_steps_and_survive_a_resume(capsys):
    cfg = TINY.replace(snapshot_every=4)
    train(cfg, "whole")
    assert [(s, p.name) for s, p in list_snapshots("whole")] == [
        (0, "whole-step0"),
        (4, "whole-step4"),
        (8, "whole-step8"),
    ]
    first = load_checkpoint("whole-step0")
    torch.manual_seed(cfg.seed)
    init = Toto(first.config).state_dict()
    assert all(torch.equal(init[k], v) for k, v in first.model.state_dict().items()), (
        "step 0 must be the initialisation the run started from"
    )
    assert same_weights("whole-step8", "whole"), "the last snapshot must be the finished run's weights"
    assert not same_weights("whole-step0", "whole-step4"), "four steps of AdamW must change the weights"

    train(cfg, "split", stop_at=4)
    assert same_weights("split", "whole-step4"), "a snapshot must hold the weights of the run at its step"
    assert [s for s, _ in list_snapshots("split")] == [0, 4]
    train(cfg, "split")
    assert [s for s, _ in list_snapshots("split")] == [0, 4, 8], (
        "a resumed run keeps its snapshots and adds on"
    )
    for step in (0, 4, 8):
        assert same_weights(f"split-step{step}", f"whole-step{step}"), f"step {step} differs after a resume"

    code, out, _ = run_cli(capsys, "info", "--ckpt", "whole-step4", "--json")
    training = json.loads(out)["training"]
    assert code == 0 and training["snapshot_of"] == "whole" and training["step"] == 4
    assert training["config"]["snapshot_every"] == 4 and training["tokens_seen"] == 4 * 4 * 1025
    tok = load_checkpoint("whole-step4")
    assert tok.tokenizer["kind"] == "kmeans", "a snapshot carries its tokenizer, as every checkpoint does"


def test_a_fresh_run_refuses_then_removes_an_older_runs_snapshots(capsys):
    args = [*TINY_ARGS, "--steps", "4", "--name", "r"]
    assert run_cli(capsys, "train", *args, "--snapshot-every", "2")[0] == 0
    assert [s for s, _ in list_snapshots("r")] == [0, 2, 4]
    other = save_checkpoint(load_checkpoint("r").model, "r-step99")  # a checkpoint of its own, not a snapshot
    shutil.rmtree(checkpoint_path("r"))  # the run is gone, its snapshots are not
    code, _, err = run_cli(capsys, "train", *args)
    assert code == 2 and "snapshots of an earlier run r" in err and "--overwrite" in err, err
    assert [s for s, _ in list_snapshots("r")] == [0, 2, 4], "a refused run must not touch them"
    assert run_cli(capsys, "train", *args, "--overwrite")[0] == 0
    assert list_snapshots("r") == [], "starting over must not leave the older run's snapshots as this one's"
    assert other.is_dir() and load_checkpoint("r-step99"), "a checkpoint that is no snapshot of r is kept"


def test_a_bad_snapshot_interval_is_one_line(capsys):
    for bad in ("0", "-3"):
        code, _, err = run_cli(
            capsys, "train", *TINY_ARGS, "--steps", "2", "--name", "s", "--snapshot-every", bad
        )
        assert code == 2 and "snapshot-every must be a positive integer" in err and err.count("\n") == 1, err
