"""Studying a public visual-token model end to end, as a user would (docs/public-models.md).

A stand-in for LVM (Bai et al., "Sequential Modeling Enables Scalable Learning for Large Vision Models"),
made here because nothing is downloaded: a tiny `LlamaForCausalLM` saved by transformers'
`save_pretrained`, whose vocabulary is LVM's order (visual codes first, ids 0 … K-1, the special ids
after them) and whose config.json carries no toto_lens block, only Llama's default bos/eos ids (1, 2),
which in this vocabulary are visual codes; and a tiny VQGAN (conv encoder, codebook, conv decoder, random
weights in safetensors) in a Python package of the user's own, wrapped by the adapter of
toto_lens/tokenizers/adapter.py. The commands run in child processes with that package on PYTHONPATH:
`toto-lens import` (the ids passed as flags, the tokenizer as a spec file), `toto-lens extract` (refused
without --trust-code, then with it), `toto-lens probe` and `toto-lens redundancy`. The imported model must compute transformers'
logits on the very token ids the store holds, and the store's loss must be transformers' loss.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import run_cli
from torch.testing import assert_close

pytestmark = pytest.mark.slow

# The console script beside this interpreter (the virtualenv's), else the one on PATH.
TOTO_LENS = (
    str(Path(sys.executable).with_name("toto-lens"))
    if Path(sys.executable).with_name("toto-lens").is_file()
    else (shutil.which("toto-lens") or "toto-lens")
)
CODES = 64  # the VQGAN's codebook: visual ids 0 … 63, as LVM's 8192 codes are ids 0 … 8191
PAD, START_VIDEO, START_IMAGE, END = CODES, CODES + 1, CODES + 2, CODES + 3  # after the codes, as in LVM
PATCH = 8  # 32×32 frames → 4×4 tokens; 16 frames → 256 tokens + start + end
CONTEXT = 16 * 4 * 4 + 2
CLIPS = 32

# The user's own VQGAN code: a package on disk, nothing of toto-lens in it.
MODEL_PY = '''
"""A tiny VQGAN: RGB in [-1, 1] → one code per patch×patch pixels → RGB back."""
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn


class TinyVQGAN(nn.Module):
    def __init__(self, n_codes=64, dim=8, patch=8):
        super().__init__()
        half = patch // 2
        self.encoder = nn.Sequential(nn.Conv2d(3, 16, half, stride=half), nn.SiLU(), nn.Conv2d(16, dim, 2, stride=2))
        self.codebook = nn.Embedding(n_codes, dim)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(dim, 16, 2, stride=2), nn.SiLU(), nn.ConvTranspose2d(16, 3, half, stride=half), nn.Tanh()
        )
        self.config = {"n_codes": n_codes, "dim": dim, "patch": patch}

    def save(self, path):
        save_file(self.state_dict(), str(path), metadata={k: str(v) for k, v in self.config.items()})

    @classmethod
    def from_checkpoint(cls, path):
        with safe_open(str(path), "pt") as f:
            config = {k: int(v) for k, v in f.metadata().items()}
            state = {k: f.get_tensor(k) for k in f.keys()}
        model = cls(**config)
        model.load_state_dict(state)
        return model

    @property
    def n_embed(self):
        return self.codebook.num_embeddings

    def encode_to_indices(self, x):  # (N, 3, H, W) → (N, H / patch, W / patch)
        z = self.encoder(x).permute(0, 2, 3, 1)  # (N, h, w, dim)
        distances = torch.cdist(z.reshape(-1, z.shape[-1]), self.codebook.weight)
        return distances.argmin(-1).reshape(z.shape[:3])

    def decode_indices(self, ids):  # (N, h, w) → (N, 3, H, W)
        return self.decoder(self.codebook(ids).permute(0, 3, 1, 2))
'''

# The adapter: the example of toto_lens/tokenizers/adapter.py, made real.
ADAPTER_PY = """
import torch
from toto_lens.tokenizers import ExternalTokenizer

from tiny_vq.model import TinyVQGAN


class TinyVQTokenizer(ExternalTokenizer):
    def __init__(self, spec):
        super().__init__(spec)  # patch, image_size, seed, name from the spec
        self.model = TinyVQGAN.from_checkpoint(spec["path"]).eval()

    @property
    def vocab_size(self):
        return self.model.n_embed  # visual codes only

    @torch.inference_mode()
    def _encode_frames(self, frames):  # [N, H, W] float32 in [0, 1]
        x = torch.from_numpy(frames)[:, None].expand(-1, 3, -1, -1) * 2 - 1
        return self.model.encode_to_indices(x).numpy()

    @torch.inference_mode()
    def _decode_frames(self, ids):  # [N, rows, cols] int64
        rgb = self.model.decode_indices(torch.from_numpy(ids))
        return ((rgb.mean(1) + 1) / 2).numpy()


def load(spec):
    return TinyVQTokenizer(spec)
"""


def _run(env, *args, expect=0):
    done = subprocess.run([TOTO_LENS, *map(str, args)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == expect, (
        f"`toto-lens {' '.join(map(str, args[:1]))}` exited {done.returncode}, not {expect}: {done.stderr[-2000:]}"
    )
    return done


@pytest.fixture(scope="module")
def transformers():
    return pytest.importorskip(
        "transformers", reason="transformers is a dev dependency (pip install -e .[dev])"
    )


@pytest.fixture(scope="module")
def study(tmp_path_factory, transformers):
    """Everything a user has on disk (a Llama folder, VQGAN code and weights), then the commands."""
    root = tmp_path_factory.mktemp("public-model")
    package = root / "user-code" / "tiny_vq"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "model.py").write_text(textwrap.dedent(MODEL_PY))
    (package / "toto_adapter.py").write_text(textwrap.dedent(ADAPTER_PY))
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(root / "user-code"))
        from tiny_vq.model import TinyVQGAN

        torch.manual_seed(0)
        TinyVQGAN(n_codes=CODES, patch=PATCH).save(root / "tiny-vqgan.safetensors")

        torch.manual_seed(1)
        cfg = transformers.LlamaConfig(
            vocab_size=CODES + 4, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=CONTEXT, rms_norm_eps=1e-6, rope_theta=10_000.0,
        )  # fmt: skip
        hf = transformers.LlamaForCausalLM(cfg).eval()
        with torch.no_grad():  # norms away from 1, so that a norm weight mapped wrongly shows
            for name, p in hf.named_parameters():
                if "norm" in name:
                    p.normal_(1.0, 0.3)
        hf.save_pretrained(root / "lvm-tiny")  # config.json, generation_config.json, model.safetensors

        spec = {
            "kind": "external", "factory": "tiny_vq.toto_adapter:load", "name": "tiny-vqgan",
            "path": str(root / "tiny-vqgan.safetensors"), "patch": PATCH, "image_size": [32, 32],
        }  # fmt: skip
        (root / "tiny-vqgan.json").write_text(json.dumps(spec))

        # The user's shell: their package importable, a cache of their own.
        paths = [str(root / "user-code"), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "TOTO_LENS_CACHE": str(root / "cache")}
        ckpt, store = root / "lvm-tiny-toto", root / "lvm-tiny.zarr"
        done = {}
        done["import"] = _run(
            env, "import", "--hf", root / "lvm-tiny", "--name", ckpt, "--tokenizer", root / "tiny-vqgan.json",
            "--layout", "16,4,4", "--code-offset", 0, "--pad", PAD, "--start-video", START_VIDEO,
            "--start-image", START_IMAGE, "--end", END, "--trust-code",
        )  # fmt: skip
        extract = ["extract", "--ckpt", ckpt, "--data", "moving-digits", "--clips", CLIPS, "--batch-size", 16,
                   "--out", store, "--acts", "pooled,frame", "--dtype", "float32"]  # fmt: skip
        done["untrusted"] = _run(env, *extract, expect=2)
        done["untrusted_store_exists"] = store.exists()
        done["extract"] = _run(env, *extract, "--trust-code")
        done["probe"] = _run(
            env, "probe", "--ckpt", ckpt, "--cache", store, "--task", "digit,motion", "--seeds", 2,
            "--out", root / "probing.nc", "--json",
        )  # fmt: skip
        done["redundancy"] = _run(
            env, "redundancy", "--ckpt", ckpt, "--cache", store, "--out", root / "redundancy.nc", "--json"
        )
        yield {"root": root, "ckpt": ckpt, "store": store, "spec": spec, "done": done}
    for name in [m for m in sys.modules if m == "tiny_vq" or m.startswith("tiny_vq.")]:
        del sys.modules[name]


def test_import_maps_the_foreign_ids_given_on_the_command_line(study):
    from toto_lens.checkpoints import load_checkpoint

    ckpt = load_checkpoint(study["ckpt"], trust_code=True)
    c = ckpt.config
    assert (c.pad_id, c.video_start_id, c.image_start_id, c.end_id) == (PAD, START_VIDEO, START_IMAGE, END), (
        "the special ids given as flags must win over config.json's bos/eos (1, 2), which are visual codes here"
    )
    assert (c.code_offset, c.num_codes) == (0, CODES), "codes come first: ids 0 … K-1, as in LVM"
    assert (
        ckpt.tokenizer["factory"] == "tiny_vq.toto_adapter:load" and ckpt.tokenizer["vocab_size"] == CODES
    ), f"the external tokenizer's spec must be saved with the checkpoint: {ckpt.tokenizer}"
    assert ckpt.training["imported"]["layout"] == {"frames": 16, "rows": 4, "cols": 4}, "layout not recorded"


def test_extract_without_trust_code_is_refused_in_one_line(study):
    done = study["done"]["untrusted"]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), f"expected one error line, got {done.stderr!r}"
    assert "tiny_vq.toto_adapter" in lines[0] and "--trust-code" in lines[0], (
        f"the refusal must name the module it would import and the flag that allows it: {lines[0]}"
    )
    assert not study["done"]["untrusted_store_exists"], "a refused extraction must write no store"


def test_the_imported_model_computes_transformers_logits_on_the_stored_token_ids(study, transformers):
    import xarray as xr

    from toto_lens.checkpoints import load_checkpoint

    ds = xr.open_zarr(study["store"], consolidated=False)
    tokens = torch.from_numpy(ds["tokens"].values[:4].astype(np.int64))
    assert tokens.shape == (4, CONTEXT), f"clips must fill the layout's {CONTEXT} positions: {tokens.shape}"
    ours = load_checkpoint(study["ckpt"], trust_code=True).model
    theirs = transformers.LlamaForCausalLM.from_pretrained(study["root"] / "lvm-tiny").eval()
    with torch.no_grad():
        want = theirs(tokens).logits
        got = ours(tokens)
    assert_close(got, want, atol=1e-4, rtol=1e-4, msg="the imported model must compute transformers' logits")
    # The store's loss is the same function's: −log p(token | earlier tokens) from transformers' logits.
    nll = -torch.log_softmax(want[:, :-1], -1).gather(-1, tokens[:, 1:, None])[..., 0]
    stored = torch.from_numpy(ds["loss"].values[:4])
    assert torch.isnan(stored[:, 0]).all(), "the first position has no prediction: its loss must be NaN"
    assert_close(stored[:, 1:], nll, atol=1e-4, rtol=1e-4, msg="the store's loss must be transformers' loss")


def test_the_store_holds_the_users_vq_codes_between_the_mapped_special_ids(study):
    import xarray as xr

    from toto_lens.data import open_source
    from toto_lens.tokenizers import tokenizer_from_spec

    ds = xr.open_zarr(study["store"], consolidated=False)
    tokens = ds["tokens"].values
    assert tokens.shape == (CLIPS, CONTEXT), f"{CLIPS} clips of {CONTEXT} tokens expected, got {tokens.shape}"
    assert (tokens[:, 0] == START_VIDEO).all() and (tokens[:, -1] == END).all(), (
        "moving-digits clips must open with the mapped video start id and close with the mapped end id"
    )
    tok = tokenizer_from_spec(study["spec"], trust_code=True)
    source = open_source("moving-digits", split="val", n_clips=CLIPS, seed=0)
    codes = tok.encode(np.stack([source[i].frames for i in range(CLIPS)]))  # (clips, 16, 4, 4)
    assert np.array_equal(tokens[:, 1:-1], codes.reshape(CLIPS, -1)), (
        "the visual ids must be the user's VQGAN codes with code offset 0 (no shift by the special ids)"
    )
    assert len(np.unique(codes)) > 4, "a VQGAN that maps every patch to a few codes would test little"


def test_probing_writes_its_figure_and_numbers_for_every_layer(study):
    import xarray as xr

    printed = json.loads(study["done"]["probe"].stdout)
    rows = {row["task"]: row for row in printed["rows"]}
    assert set(rows) == {"digit", "motion"}, f"a best layer per task expected: {printed['rows']}"
    for task, row in rows.items():
        assert np.isfinite(row["val_mean"]) and row["n_train"] + row["n_val"] == CLIPS, (
            f"{task}: the probe must be scored on held-out clips of the {CLIPS} extracted: {row}"
        )
    page = Path(printed["figure"])
    assert page.is_file() and "Plotly.newPlot" in page.read_text(encoding="utf-8"), "no plotly figure written"
    result = xr.open_dataset(printed["data"])
    assert list(result["layer"].values) == [0, 1, 2], "every layer (embeddings and both blocks) is probed"
    assert np.isfinite(result["val_score"].values).all(), "a probing score is missing for a layer or seed"


def test_redundancy_reads_the_same_store(study):
    printed = json.loads(study["done"]["redundancy"].stdout)
    assert printed["clips"] == CLIPS, (
        f"the frame-wise loss must cover every extracted clip: {printed['clips']}"
    )
    assert np.isfinite([printed["first_frame_loss"], printed["later_frames_loss"]]).all(), (
        f"the first-frame and later-frame losses must be numbers: {printed}"
    )
    assert Path(printed["figure"]).is_file(), "no redundancy figure written"


def test_a_spec_file_naming_code_is_refused_at_import_without_trust_code(study, capsys, tmp_path):
    root = study["root"]
    code, _, err = run_cli(
        capsys, "import", "--hf", str(root / "lvm-tiny"), "--name", str(tmp_path / "x"),
        "--tokenizer", str(root / "tiny-vqgan.json"), "--code-offset", "0", "--pad", str(PAD),
    )  # fmt: skip
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, f"expected exit 2 and one line, got {code}: {err!r}"
    assert "tiny_vq.toto_adapter" in lines[0] and "--trust-code" in lines[0], (
        f"name module and flag: {lines[0]}"
    )
    assert not (tmp_path / "x").exists(), "a refused import must write no checkpoint"
    code, _, err = run_cli(
        capsys, "import", "--hf", str(root / "lvm-tiny"), "--name", str(tmp_path / "y"),
        "--tokenizer", str(tmp_path / "absent.json"), "--trust-code",
    )  # fmt: skip
    assert code == 2 and "absent.json is missing" in err, f"a missing spec file must be named: {err!r}"
