"""Checkpoints: bitwise round trip, the registry, atomic saves, and one clear error per broken file."""

import json
import os

import pytest
import torch

from toto_lens import Toto, load_checkpoint, save_checkpoint
from toto_lens.checkpoints import CONFIG, WEIGHTS, list_checkpoints
from toto_lens.errors import CheckpointError
from toto_lens.paths import cache_root


@pytest.fixture
def saved(tiny_config, tmp_path):
    model = Toto(tiny_config)
    path = save_checkpoint(
        model,
        tmp_path / "ckpt",
        tokenizer={"kind": "kmeans", "vocab": 36},
        tokenizer_state={"codebook": torch.randn(36, 4)},
        training={"steps": 7, "lr": 3e-4},
    )
    return model, path


def test_round_trip_is_bitwise(saved):
    model, path = saved
    ckpt = load_checkpoint(path)
    assert ckpt.config == model.config
    assert set(ckpt.model.state_dict()) == set(model.state_dict())
    for k, v in model.state_dict().items():
        got = ckpt.model.state_dict()[k]
        assert got.dtype == v.dtype and torch.equal(got, v), f"{k} changed in the round trip"
    x = torch.randint(0, model.config.vocab_size, (2, 10))
    with torch.no_grad():
        assert torch.equal(ckpt.model(x), model.eval()(x)), "rotary tables must be rebuilt on load"
    assert ckpt.tokenizer == {"kind": "kmeans", "vocab": 36}
    assert ckpt.tokenizer_state["codebook"].shape == (36, 4)
    assert ckpt.training == {"steps": 7, "lr": 3e-4}
    assert len(ckpt.sha256) == 64 and ckpt.sha256 == json.loads((path / CONFIG).read_text())["weights_sha256"]


def test_loading_runs_no_initialiser_and_imports_no_compiler(saved):
    # Initialising the meta model's tensors imported torch._dynamo: about 2 s of every command that loads.
    import subprocess
    import sys

    _, path = saved
    code = (
        "import sys; from toto_lens import load_checkpoint; ck = load_checkpoint(sys.argv[1]); "
        "print('torch._dynamo' in sys.modules, ck.model.tok_embeddings.weight.device)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "cpu"], (
        f"loading imported the compiler or left meta tensors: {out}"
    )
    Toto.empty(saved[0].config)
    assert torch.nn.Linear(4, 4).weight.abs().sum() > 0, (
        "modules built after Toto.empty must initialise again"
    )


def test_nothing_is_pickled(saved):
    _, path = saved
    assert sorted(p.name for p in path.iterdir()) == [
        "config.json",
        "model.safetensors",
        "tokenizer.safetensors",
    ]
    assert (path / WEIGHTS).read_bytes()[8:9] == b"{", "model.safetensors must start with a JSON header"


def test_bare_name_saves_into_and_loads_from_the_registry(tiny_config):
    save_checkpoint(Toto(tiny_config), "my-run")
    assert (cache_root() / "checkpoints" / "my-run" / CONFIG).is_file()
    assert list_checkpoints() == ["my-run"]
    assert load_checkpoint("my-run").name == "my-run"


def test_overwrite_is_refused_unless_asked(saved, tiny_config):
    model, path = saved
    before = (path / WEIGHTS).read_bytes()
    with pytest.raises(CheckpointError, match="already exists.*overwrite"):
        save_checkpoint(Toto(tiny_config), path)
    assert (path / WEIGHTS).read_bytes() == before, "a refused save must leave the old checkpoint alone"
    other = Toto(tiny_config)
    save_checkpoint(other, path, overwrite=True)
    assert torch.equal(load_checkpoint(path).model.output.weight, other.output.weight)
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == [], "temporary folders left"


def test_failed_save_leaves_nothing_behind(tiny_config, tmp_path):
    with pytest.raises(CheckpointError, match="not JSON-serialisable"):
        save_checkpoint(Toto(tiny_config), tmp_path / "bad", training={"when": object()})
    assert list(tmp_path.iterdir()) == [], (
        "a failed save must leave neither the target nor a temporary folder"
    )


def test_failed_overwrite_keeps_the_old_checkpoint(saved, tiny_config):
    model, path = saved
    with pytest.raises(CheckpointError):
        save_checkpoint(Toto(tiny_config), path, training={"x": {1, 2}}, overwrite=True)
    assert torch.equal(load_checkpoint(path).model.output.weight, model.output.weight)


def test_unknown_name_lists_what_exists(tiny_config):
    save_checkpoint(Toto(tiny_config), "exists-a")
    with pytest.raises(CheckpointError) as e:
        load_checkpoint("toto-large")
    msg = str(e.value)
    assert "'toto-large'" in msg and "exists-a" in msg and "toto-lens init" in msg


def test_truncated_weights(saved):
    _, path = saved
    data = (path / WEIGHTS).read_bytes()
    (path / WEIGHTS).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=f"{WEIGHTS}.*truncated or corrupted"):
        load_checkpoint(path)


def test_flipped_byte_fails_the_checksum(saved):
    _, path = saved
    data = bytearray((path / WEIGHTS).read_bytes())
    data[-3] ^= 0xFF
    (path / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match the sha256"):
        load_checkpoint(path)
    assert (
        load_checkpoint(path, verify=False).sha256
        != json.loads((path / CONFIG).read_text())["weights_sha256"]
    )


def test_invalid_json(saved):
    _, path = saved
    (path / CONFIG).write_text('{"model": ')
    with pytest.raises(CheckpointError, match=f"{CONFIG} is not valid JSON"):
        load_checkpoint(path)


@pytest.mark.parametrize("field", ["dim", "n_layers"])
def test_config_missing_a_field(saved, field):
    _, path = saved
    meta = json.loads((path / CONFIG).read_text())
    del meta["model"][field]
    (path / CONFIG).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=f"{CONFIG}.*missing field.*{field}"):
        load_checkpoint(path)


def test_config_without_model(saved):
    _, path = saved
    meta = json.loads((path / CONFIG).read_text())
    del meta["model"]
    (path / CONFIG).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="misses the field 'model'"):
        load_checkpoint(path)


def test_shapes_that_do_not_match_the_config(saved):
    _, path = saved
    meta = json.loads((path / CONFIG).read_text())
    meta["model"]["ffn_dim"] = 48
    (path / CONFIG).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"w1.weight has shape \[64, 32\].*\[48, 32\]"):
        load_checkpoint(path)


def test_extra_layers_in_weights(saved):
    _, path = saved
    meta = json.loads((path / CONFIG).read_text())
    meta["model"]["n_layers"] = 1
    (path / CONFIG).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="does not match its config: unexpected blocks.1"):
        load_checkpoint(path)


def test_missing_weights_file(saved):
    _, path = saved
    os.remove(path / WEIGHTS)
    with pytest.raises(CheckpointError, match=f"{WEIGHTS} is missing"):
        load_checkpoint(path)


def test_load_dtype_and_eval_mode(saved):
    _, path = saved
    ckpt = load_checkpoint(path, dtype=torch.bfloat16)
    assert not ckpt.model.training
    assert all(p.dtype == torch.bfloat16 for p in ckpt.model.parameters())
    assert ckpt.model.rope_cos.dtype == torch.float32, "rotary tables lose precision in bf16"
