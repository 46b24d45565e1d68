"""Trust: a checkpoint or tokenizer spec that names code to import is refused unless the user says so.

Each test plants a factory module on sys.path whose import leaves a marker file: a refusal must name the
module, leave no marker and not put the module in sys.modules; with trust the same load works.
"""

import json
import sys
import uuid

import numpy as np
import pytest
import torch
import xarray as xr
from helpers import run_cli

from toto_lens.checkpoints import describe, load_checkpoint, save_checkpoint
from toto_lens.model import Toto
from toto_lens.store.reader import cache_tokenizer
from toto_lens.tokenizers import (
    ExternalTokenizer,
    load_tokenizer,
    register_tokenizer,
    save_tokenizer,
    tokenizer_from_spec,
)
from toto_lens.tokenizers import registry as registry_module
from toto_lens.tokenizers.registry import UntrustedCodeError

FACTORY = """
import pathlib

pathlib.Path({marker!r}).write_text("imported")

import numpy as np

from toto_lens.tokenizers import ExternalTokenizer, patchify


class Lit(ExternalTokenizer):
    @property
    def vocab_size(self):
        return 2

    def _encode_frames(self, frames):
        return (patchify(frames, self.patch).mean(-1) > 0.25).astype(np.int64)

    def _decode_frames(self, ids):
        return np.repeat(np.repeat(ids, self.patch, axis=1), self.patch, axis=2).astype(np.float32)


def make(spec):
    return Lit(spec)
"""


@pytest.fixture
def planted(tmp_path, monkeypatch):
    """(spec naming a planted factory, its module name, the marker its import writes)."""
    module = f"planted_{uuid.uuid4().hex[:8]}"
    marker = tmp_path / "imported.txt"
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / f"{module}.py").write_text(FACTORY.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(tmp_path / "code"))
    spec = {
        "kind": "external",
        "factory": f"{module}:make",
        "patch": 4,
        "image_size": [32, 32],
        "name": "lit",
    }
    yield spec, module, marker
    sys.modules.pop(module, None)


def assert_refused(error_text: str, module: str, marker) -> None:
    assert f"module {module!r}" in error_text and "--trust-code" in error_text, error_text
    assert not marker.exists(), "a refused spec must import nothing (the planted module ran)"
    assert module not in sys.modules, "a refused spec must not leave its module imported"


def test_a_spec_naming_code_is_refused_without_trust(planted):
    spec, module, marker = planted
    with pytest.raises(UntrustedCodeError) as e:
        tokenizer_from_spec(spec)
    assert_refused(str(e.value), module, marker)
    tok = tokenizer_from_spec(spec, trust_code=True)
    assert marker.exists() and tok.vocab_size == 2 and tok.encode(np.zeros((1, 32, 32))).shape == (1, 8, 8)


def test_a_tokenizer_folder_naming_code_is_refused_without_trust(planted, tmp_path):
    spec, module, marker = planted
    folder = tmp_path / "tok"
    folder.mkdir()
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    from safetensors.numpy import save_file

    save_file({}, str(folder / "tokenizer.safetensors"))
    with pytest.raises(UntrustedCodeError) as e:
        load_tokenizer(folder)
    assert_refused(str(e.value), module, marker)
    assert load_tokenizer(folder, trust_code=True).vocab_size == 2


def test_a_checkpoint_naming_code_is_refused_by_every_command(planted, capsys):
    spec, module, marker = planted
    save_checkpoint(
        Toto(builtin_config()), "ext", tokenizer=spec, training={"config": {"data": "moving-digits"}}
    )
    with pytest.raises(UntrustedCodeError) as e:
        load_checkpoint("ext")
    assert_refused(str(e.value), module, marker)
    for args in (["info", "--ckpt", "ext"], ["extract", "--ckpt", "ext", "--clips", "2", "--dry-run"],
                 ["init", "--like", "ext", "--name", "ext-init"], ["export", "--ckpt", "ext", "--out", "x"]):  # fmt: skip
        code, _, err = run_cli(capsys, *args)
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, (args, err)
        assert_refused(err, module, marker)
    assert "imports" in describe(load_checkpoint("ext", trust_code=True))["tokenizer_summary"]
    assert not marker.exists(), "describing a trusted checkpoint still imports nothing"
    code, out, err = run_cli(capsys, "extract", "--ckpt", "ext", "--clips", "2", "--dry-run", "--trust-code")
    assert code == 0 and "would hold" in out, err
    assert marker.exists(), "with --trust-code the factory is imported and run"


def test_a_cache_whose_tokenizer_names_code_is_refused_without_trust(planted, tiny_config):
    spec, module, marker = planted
    folder = save_checkpoint(Toto(tiny_config), "ext-cache", tokenizer=spec)
    ds = xr.Dataset(attrs={"tokenizer": json.dumps(spec), "checkpoint": json.dumps({"path": str(folder)})})
    with pytest.raises(UntrustedCodeError) as e:
        cache_tokenizer(ds)
    assert_refused(str(e.value), module, marker)
    assert cache_tokenizer(ds, trust_code=True).vocab_size == 2


def test_registered_and_builtin_kinds_need_no_trust(monkeypatch, tmp_path):
    monkeypatch.setattr(registry_module, "_REGISTRY", dict(registry_module._REGISTRY))  # undone after

    class Mine(ExternalTokenizer):
        kind = "mine"
        vocab_size = 3

        def _encode_frames(self, frames):
            return np.zeros((len(frames), 8, 8), np.int64)

        def _decode_frames(self, ids):
            return np.zeros((len(ids), 32, 32), np.float32)

    register_tokenizer("mine", Mine)  # the user's own code chose what runs
    tok = tokenizer_from_spec({"kind": "mine", "patch": 4, "image_size": [32, 32], "factory": "os:system"})
    assert isinstance(tok, Mine), (
        "a registered kind is rebuilt by its class, never by a factory the spec names"
    )
    builtin = load_tokenizer("random-16")
    back = load_tokenizer(save_tokenizer(builtin, tmp_path / "r16"))
    assert np.array_equal(back.codebook, builtin.codebook)
    model = Toto(builtin_config())
    save_checkpoint(model, "plain", tokenizer=builtin.spec, tokenizer_state=builtin.state_dict())
    assert load_checkpoint("plain").load_tokenizer().vocab_size == 16


def builtin_config():
    from toto_lens.config import ModelConfig

    torch.manual_seed(0)
    return ModelConfig(vocab_size=20, dim=16, n_layers=1, n_heads=2, ffn_dim=32, context_length=1100)
