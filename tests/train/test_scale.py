"""Training at scale in one process: activation checkpointing, and FSDP runs' sharded (DCP) checkpoints.

`--fsdp` in one process shards nothing, but its checkpoints go the same way as under torchrun: DCP into
NAME.dcp/step-N/ every ckpt_every steps, the full safetensors checkpoint at the end. tests/test_distributed.py
runs the same under two processes.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import run_cli
from safetensors import safe_open

from toto_lens import distributed as D
from toto_lens import load_checkpoint
from toto_lens.checkpoints import read_extra
from toto_lens.model import Toto
from toto_lens.train import TrainConfig, train
from toto_lens.train.state import dcp_path, latest_sharded, read_sharded

EXE = Path(sys.executable).with_name("toto-lens")
TINY = TrainConfig(
    model="toto-debug", tokenizer="kmeans-64", steps=8, batch_size=4, train_clips=16, val_clips=4,
    eval_every=4, log_every=2, ckpt_every=4, warmup=2, threads=1,
)  # fmt: skip
SHARDED = TINY.replace(fsdp=True)
TINY_ARGS = [
    "--model", "toto-debug", "--tokenizer", "kmeans-64", "--batch-size", "4", "--train-clips", "16",
    "--val-clips", "4", "--eval-every", "4", "--log-every", "2", "--warmup", "2", "--threads", "1",
]  # fmt: skip


def registry() -> Path:
    return Path(os.environ["TOTO_LENS_CACHE"]) / "checkpoints"


def keys(path: Path) -> list[str]:
    with safe_open(str(path), "pt") as f:
        return sorted(f.keys())


def strip(log):
    return [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in log]


def assert_same_weights(a: str, b: str, why: str) -> None:
    one, two = load_checkpoint(a).model.state_dict(), load_checkpoint(b).model.state_dict()
    for key in one:
        assert torch.equal(one[key], two[key]), f"{key} differs: {why}"


def test_activation_checkpointing_recomputes_each_block_and_changes_no_number(tiny_config):
    torch.manual_seed(0)
    plain = Toto(tiny_config)
    checked = D.checkpoint_activations(Toto(tiny_config))
    checked.load_state_dict(plain.state_dict())
    assert list(checked.state_dict()) == list(plain.state_dict()), "parameter names must stay the same"
    calls = []
    checked.blocks[0].attn.register_forward_hook(lambda *_: calls.append(1))
    tokens = torch.randint(0, tiny_config.vocab_size, (2, 33))
    for model in (plain, checked):
        logits = model(tokens[:, :-1])
        F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten()).backward()
    assert len(calls) == 2, "the block must run again in the backward pass (forward, then recompute)"
    for (name, p), q in zip(plain.named_parameters(), checked.parameters(), strict=True):
        assert torch.equal(p.grad, q.grad), f"recomputing activations changed the gradient of {name}"


def test_activation_checkpointing_trains_the_same_weights_under_the_same_names():
    plain = train(TINY, "plain")
    checked = train(TINY.replace(activation_checkpointing=True), "checked")
    assert strip(checked.log) == strip(plain.log), "the losses must be the same, to the last bit"
    assert_same_weights("plain", "checked", "activation checkpointing must not change the weights")
    for file in ("model.safetensors", "optimizer.safetensors"):
        assert keys(registry() / "plain" / file) == keys(registry() / "checked" / file), (
            f"{file}: activation checkpointing must not rename parameters (checkpoints load everywhere)"
        )


def test_sharded_run_resumes_from_its_dcp_folder_bitwise():
    whole = train(SHARDED, "whole")
    half = train(SHARDED, "split", stop_at=4)
    assert half.step == 4 and not half.complete
    shards = dcp_path(registry() / "split") / "step-4"
    assert latest_sharded(registry() / "split") == shards, "the sharded checkpoint of step 4 must be the last"
    files = {p.name for p in shards.iterdir()}
    assert {".metadata", "__0_0.distcp", "training.json", "train_log.jsonl"} <= files, files
    assert not (registry() / "split").exists(), "mid-run, an FSDP run writes no full checkpoint unless asked"
    said = []
    rest = train(SHARDED, "split", report=said.append)
    assert any(s.startswith(f"resuming {shards} at step 4") for s in said), said
    assert rest.complete and load_checkpoint("split").training["step"] == 8, "the end writes the full one"
    assert_same_weights("whole", "split", "resuming from the sharded checkpoint must be exact")
    assert strip(rest.log) == strip(whole.log), "a resumed run's log must read as one uninterrupted run"
    left = sorted(p.name for p in dcp_path(registry() / "split").iterdir())
    assert left == ["step-8"], f"older steps and temporary folders must be gone: {left}"


def test_full_checkpoint_at_the_end_equals_the_sharded_one():
    train(SHARDED, "both")
    folder = registry() / "both"
    ckpt = load_checkpoint(folder)
    moments = read_extra(folder, "optimizer")
    optimizer: dict = {}
    for key, value in moments.items():
        if key.startswith("state."):
            name, _, field = key[len("state.") :].rpartition(".")
            optimizer.setdefault(name, {})[field] = value
    full = {"model": ckpt.model.state_dict(), "optimizer": optimizer, "step": torch.tensor(0)}
    sharded = read_sharded(latest_sharded(folder), full)  # read into zeros of the same shapes
    assert int(sharded["step"]) == ckpt.training["step"] == 8, "both must hold the last step"
    for key, value in full["model"].items():
        assert torch.equal(sharded["model"][key], value), f"weights {key}: the full and sharded ones differ"
    for name, fields in optimizer.items():
        for field, value in fields.items():
            assert torch.equal(sharded["optimizer"][name][field], value), f"AdamW {name}.{field} differs"


def test_resume_takes_the_newer_of_the_full_and_the_sharded_checkpoint():
    cfg = SHARDED.replace(full_ckpt_every=2)
    train(cfg, "whole")
    folder, said = registry() / "split", []
    train(cfg, "split", stop_at=4)
    assert load_checkpoint("split").training["step"] == 4, "--full-ckpt-every 2 must write step 4 in full"
    older = shutil.copytree(latest_sharded(folder), registry() / "step-4-copy")
    train(cfg, "split", stop_at=6, report=said.append)
    assert any(s.startswith(f"resuming {dcp_path(folder) / 'step-4'} at step 4") for s in said), (
        f"on a tie the sharded checkpoint must be read (nothing to gather): {said}"
    )
    # What a kill between the full and the sharded saves of step 6 would leave: full 6, sharded 4.
    shutil.rmtree(dcp_path(folder) / "step-6")
    shutil.move(older, dcp_path(folder) / "step-4")
    said.clear()
    train(cfg, "split", report=said.append)
    assert any(s.startswith(f"resuming {folder} at step 6") for s in said), said
    assert_same_weights("whole", "split", "resuming from the newer full checkpoint must be exact")


def test_overwrite_with_fsdp_replaces_an_older_full_checkpoint_at_its_first_save():
    train(TINY, "again")
    assert not dcp_path(registry() / "again").exists(), "without FSDP there is no sharded checkpoint"
    train(SHARDED, "again", overwrite=True, stop_at=4)
    assert not (registry() / "again").exists(), "the old run's full checkpoint would shadow the new run's"
    assert train(SHARDED, "again").complete, "the same settings without --overwrite resume the new run"


def test_sigkill_during_sharded_saves_leaves_the_last_one_readable():
    args = [
        str(EXE),
        "train",
        *TINY_ARGS,
        "--fsdp",
        "--steps",
        "400",
        "--ckpt-every",
        "1",
        "--name",
        "killed",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy())
    folder = registry() / "killed"
    deadline = time.time() + 120
    while time.time() < deadline and latest_sharded(folder) is None and proc.poll() is None:
        time.sleep(0.1)
    time.sleep(0.5)  # somewhere in the middle of later steps and saves
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    last = latest_sharded(folder)
    assert last is not None, proc.stderr.read().decode()[-2000:]
    step = json.loads((last / "training.json").read_text())["step"]
    assert 1 <= step < 400, step
    said = []  # its shards are whole: the run carries on from them
    result = train(SHARDED.replace(steps=400, ckpt_every=1), "killed", stop_at=step + 1, report=said.append)
    assert any(s.startswith(f"resuming {last} at step {step}:") for s in said), said
    assert result.step == step + 1 and latest_sharded(folder).name == f"step-{step + 1}"


@pytest.mark.parametrize(
    "args, words",
    [
        (["--no-dcp"], "--no-dcp only applies with --fsdp"),
        (["--full-ckpt-every", "2"], "--full-ckpt-every only applies to sharded checkpoints"),
        (["--fsdp", "--no-dcp", "--full-ckpt-every", "2"], "--full-ckpt-every only applies to sharded"),
        (["--fsdp", "--full-ckpt-every", "0"], "full-ckpt-every must be a positive integer"),
    ],
)
def test_nonsense_checkpoint_options_are_one_line_and_exit_code_2(capsys, args, words):
    code, _, err = run_cli(capsys, "train", *TINY_ARGS, "--steps", "2", "--name", "bad", *args)
    assert code == 2 and err.startswith("error: ") and words in err and err.count("\n") == 1, err


class _Payload:
    """What a tampered `.metadata` could hold: unpickling it would run a command that leaves a file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_tampered_sharded_checkpoint_is_refused_without_running_its_code(tmp_path):
    import pickle

    from toto_lens.errors import CheckpointError

    train(SHARDED, "tampered", stop_at=4)
    shards = latest_sharded(registry() / "tampered")
    marker = tmp_path / "ran"
    (shards / ".metadata").write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(CheckpointError, match="system, which a sharded checkpoint never holds"):
        train(SHARDED, "tampered")
    assert not marker.exists(), "resuming unpickled the sharded checkpoint's code and ran it"
