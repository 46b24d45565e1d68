"""Weights between Toto and the Llama world: Hugging Face folders both ways, Meta/gpt-fast state dicts.

References are external: transformers' `LlamaForCausalLM` for the Hugging Face layout, and a forward
pass written as Meta's `llama/model.py` computes it (interleaved rotary pairs through complex numbers)
for the Meta/gpt-fast layout.
"""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from helpers import run_cli
from safetensors.torch import load_file, save_file
from torch.testing import assert_close

from toto_lens import Toto
from toto_lens.checkpoints import load_checkpoint, save_checkpoint
from toto_lens.cli import main
from toto_lens.config import ModelConfig
from toto_lens.convert import ConvertError, export_hf, import_hf, names, to_llama_state, to_toto_state
from toto_lens.convert.state import expected_shapes

PLAIN = ModelConfig(
    vocab_size=40, dim=32, n_layers=2, n_heads=4, ffn_dim=64, context_length=80, rope_base=500.0, name="t"
)
CONFIGS = {
    "plain": PLAIN,
    "mup": PLAIN.replace(mup_base_width=16),  # width 32 = 2 × base: attention scale and 1/m both differ
    "gqa": PLAIN.replace(n_kv_heads=2),
}


@pytest.fixture(scope="module")
def transformers():
    return pytest.importorskip(
        "transformers", reason="transformers is a dev dependency (pip install -e .[dev])"
    )


def _random_model(config: ModelConfig, seed: int = 0) -> Toto:
    """Every weight random, norms around 1: a mapping that mixes up two tensors cannot go unnoticed
    (μP's zero readout and the unit norms of a fresh init would hide it)."""
    model = Toto(config).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3 + (1.0 if "norm" in name else 0.0))
    return model


def _tokens(config: ModelConfig, T: int = 24) -> torch.Tensor:
    return torch.randint(0, config.vocab_size, (2, T), generator=torch.Generator().manual_seed(1))


def _residuals(model: Toto, tokens: torch.Tensor) -> list[torch.Tensor]:
    """Our residual stream per layer: 0 = token embeddings, i ≥ 1 = output of block i − 1."""
    seen = []

    def keep(module, args, out):  # a block returns its output, or (output, attention pattern)
        seen.append(out[0] if isinstance(out, tuple) else out)

    hooks = [model.tok_embeddings.register_forward_hook(keep)]
    hooks += [b.register_forward_hook(keep) for b in model.blocks]
    try:
        with torch.no_grad():
            model(tokens)
    finally:
        for h in hooks:
            h.remove()
    return seen


@pytest.mark.parametrize("kind", CONFIGS)
def test_an_exported_folder_computes_our_logits_and_residual_stream_in_transformers(
    kind, tmp_path, capsys, transformers
):
    config = CONFIGS[kind]
    model = _random_model(config)
    save_checkpoint(model, "src")
    code, out, err = run_cli(
        capsys, "export", "--ckpt", "src", "--format", "hf", "--out", str(tmp_path / "hf")
    )
    assert code == 0, f"export failed: {err}"
    hf_config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert hf_config["architectures"] == ["LlamaForCausalLM"] and hf_config["tie_word_embeddings"] is False
    hf = transformers.LlamaForCausalLM.from_pretrained(tmp_path / "hf").eval()
    x = _tokens(config)
    with torch.no_grad():
        got = hf(x, output_hidden_states=True)
        want = model(x)
    assert_close(got.logits, want, atol=1e-4, rtol=1e-4, msg=f"{kind}: transformers' logits differ from ours")
    ours = _residuals(model, x)
    for i in range(config.n_layers):  # HF's last entry is after the final norm, ours is not
        assert_close(got.hidden_states[i], ours[i], atol=1e-4, rtol=1e-4, msg=f"{kind}: residual {i} differs")


@pytest.mark.parametrize("shard", [None, "12KB"], ids=["one-file", "sharded"])
def test_a_transformers_llama_imports_and_gives_its_logits(shard, tmp_path, transformers):
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5, rope_theta=300.0,
    )  # fmt: skip
    hf = transformers.LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if "norm" in name:
                p.normal_(1.0, 0.3)
    kwargs = {} if shard is None else {"max_shard_size": shard}
    hf.save_pretrained(tmp_path / "hf", **kwargs)
    sharded = (tmp_path / "hf" / "model.safetensors.index.json").is_file()
    assert sharded == (shard is not None), "the sharded case must really be sharded (and the other not)"
    with pytest.raises(ConvertError, match="does not say which ids"):  # a foreign config names no ids
        import_hf(tmp_path / "hf", "imp")
    import_hf(
        tmp_path / "hf", "imp", specials={"pad_id": 0, "video_start_id": 1, "end_id": 2, "image_start_id": 3}
    )
    ckpt = load_checkpoint("imp")
    x = _tokens(ckpt.config)
    with torch.no_grad():
        assert_close(ckpt.model(x), hf(x).logits, atol=1e-4, rtol=1e-4, msg="imported model's logits differ")
    assert ckpt.config.rope_base == 300.0 and ckpt.config.kv_heads == 2, "config fields were not carried"
    assert ckpt.training["imported"]["format"] == "hf", "the checkpoint must record where it came from"


BITWISE = {
    "plain": PLAIN,
    # GQA, and LVM's token order: visual codes first (ids 0 … 31), the special ids after them.
    "gqa-codes-first": PLAIN.replace(
        n_kv_heads=2, first_code_id=0, pad_id=32, video_start_id=33, end_id=34, image_start_id=35
    ),
}


@pytest.mark.parametrize("kind", BITWISE)
def test_export_then_import_is_bitwise(kind, tmp_path, capsys):
    config = BITWISE[kind]
    model = _random_model(config)
    save_checkpoint(model, "src")
    export_hf("src", tmp_path / "hf")
    code, _, err = run_cli(capsys, "import", "--hf", str(tmp_path / "hf"), "--name", "back")
    assert code == 0, f"import failed: {err}"
    back = load_checkpoint("back")
    for key, want in model.state_dict().items():
        assert torch.equal(back.model.state_dict()[key], want), f"{key} changed on the way out and back"
    assert back.config == config, "special ids, code offset or shapes were lost through config.json"
    assert back.config.num_codes == config.num_codes, "the visual codes' id range changed"


def test_import_records_layout_special_ids_and_tokenizer(tmp_path, capsys):
    save_checkpoint(_random_model(PLAIN), "src")
    export_hf("src", tmp_path / "hf")
    code, out, err = run_cli(
        capsys, "import", "--hf", str(tmp_path / "hf"), "--name", "imp", "--tokenizer", "random-16",
        "--layout", "1,8,8", "--start-video", "5", "--start-image", "6", "--end", "7", "--pad", "8",
    )  # fmt: skip
    assert code == 0, f"import failed: {err}"
    ckpt = load_checkpoint("imp")
    c = ckpt.config
    assert (c.video_start_id, c.image_start_id, c.end_id, c.pad_id) == (5, 6, 7, 8), "flags must win"
    assert c.code_offset == 9, "codes follow the special ids when no --code-offset is given"
    assert ckpt.training["imported"]["layout"] == {"frames": 1, "rows": 8, "cols": 8}, "layout not recorded"
    assert ckpt.tokenizer["name"] == "random-16" and ckpt.tokenizer_state, "tokenizer spec/state not saved"


def test_a_layout_longer_than_the_context_is_refused(tmp_path, capsys):
    save_checkpoint(_random_model(PLAIN), "src")
    export_hf("src", tmp_path / "hf")
    code, _, err = run_cli(capsys, "import", "--hf", str(tmp_path / "hf"), "--name", "x", "--layout", "2,8,8")
    assert code == 2 and "130 positions" in err, f"a layout beyond the context must be named: {err}"


# --- Meta / gpt-fast: interleaved rotary pairs, fused wqkv ---------------------------------------------


def _meta_forward(sd: dict, c: ModelConfig, tokens: torch.Tensor) -> torch.Tensor:
    """Logits as Meta's llama/model.py computes them: rotary on interleaved pairs via complex numbers."""
    B, T = tokens.shape
    H, KV, hd = c.n_heads, c.kv_heads, c.head_dim
    freqs = 1.0 / (c.rope_base ** (torch.arange(0, hd, 2)[: hd // 2].float() / hd))
    freqs_cis = torch.polar(torch.ones(T, hd // 2), torch.outer(torch.arange(T).float(), freqs))

    def rope(x):  # (B, T, heads, hd)
        xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
        return torch.view_as_real(xc * freqs_cis[None, :, None, :]).flatten(3)

    def norm(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + c.norm_eps) * w

    h = sd["tok_embeddings.weight"][tokens]
    mask = torch.full((T, T), float("-inf")).triu(1)
    for i in range(c.n_layers):
        p = f"layers.{i}."
        x = norm(h, sd[p + "attention_norm.weight"])
        q = rope((x @ sd[p + "attention.wq.weight"].T).view(B, T, H, hd))
        k = rope((x @ sd[p + "attention.wk.weight"].T).view(B, T, KV, hd)).repeat_interleave(H // KV, 2)
        v = (x @ sd[p + "attention.wv.weight"].T).view(B, T, KV, hd).repeat_interleave(H // KV, 2)
        scores = torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(hd) + mask
        o = torch.einsum("bhts,bshd->bthd", scores.softmax(-1), v).reshape(B, T, H * hd)
        h = h + o @ sd[p + "attention.wo.weight"].T
        x = norm(h, sd[p + "ffn_norm.weight"])
        ff = p + "feed_forward."
        h = h + (F.silu(x @ sd[ff + "w1.weight"].T) * (x @ sd[ff + "w3.weight"].T)) @ sd[ff + "w2.weight"].T
    return norm(h, sd["norm.weight"]) @ sd["output.weight"].T


def _random_meta_state(config: ModelConfig) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    meta = names(config.n_layers, "meta")
    return {
        meta[k]: torch.randn(shape, generator=g) * 0.3 + (1.0 if "norm" in k else 0.0)
        for k, shape in expected_shapes(config).items()
    }


def _loaded(config: ModelConfig, state: dict) -> Toto:
    model = Toto(config).eval()
    model.load_state_dict(state, strict=True)
    return model


@pytest.mark.parametrize("kind", ["plain", "gqa"])
def test_a_meta_state_dict_computes_metas_logits_only_with_the_rotary_permutation(kind):
    config = CONFIGS[kind]
    meta = _random_meta_state(config)
    x = _tokens(config)
    with torch.no_grad():
        want = _meta_forward(meta, config, x)
        got = _loaded(config, to_toto_state(meta, config))(x)
        renamed_only = {mine: meta[theirs] for mine, theirs in names(config.n_layers, "meta").items()}
        skipped = _loaded(config, renamed_only)(x)
    assert_close(got, want, atol=1e-5, rtol=1e-5, msg="converted Meta weights must compute Meta's logits")
    assert (skipped - want).abs().max() > 1e-2, (
        "without the permutation the logits must differ (else vacuous)"
    )


def test_a_gpt_fast_fused_wqkv_dict_loads_and_matches():
    config = CONFIGS["gqa"]
    meta = _random_meta_state(config)
    fused = dict(meta)
    for i in range(config.n_layers):
        parts = [fused.pop(f"layers.{i}.attention.{p}.weight") for p in ("wq", "wk", "wv")]
        fused[f"layers.{i}.attention.wqkv.weight"] = torch.cat(parts)
    fused["freqs_cis"] = torch.zeros(config.context_length, config.head_dim // 2, 2)  # derived: dropped
    converted = to_toto_state(fused, config)
    for key, want in to_toto_state(meta, config).items():
        assert torch.equal(converted[key], want), f"{key}: the fused split differs from separate wq/wk/wv"
    x = _tokens(config)
    with torch.no_grad():
        assert_close(_loaded(config, converted)(x), _meta_forward(meta, config, x), msg="fused wqkv logits")


def test_a_checkpoint_file_in_meta_layout_loads_through_the_conversion(tmp_path):
    config = CONFIGS["gqa"]
    meta = _random_meta_state(config)
    save_checkpoint(Toto(config), tmp_path / "meta-ckpt", weights=meta)
    x = _tokens(config)
    with torch.no_grad():
        got = load_checkpoint(tmp_path / "meta-ckpt").model(x)
        assert_close(got, _meta_forward(meta, config, x), msg="load_checkpoint must convert Meta layouts")


def test_our_weights_to_meta_and_back_are_unchanged():
    config = CONFIGS["gqa"]
    state = _random_model(config).state_dict()
    back = to_toto_state(to_llama_state(state, config, "meta"), config)
    for key, want in state.items():
        assert torch.equal(back[key], want), f"{key}: ours → Meta → ours is not the identity"


# --- what cannot be converted: one line, exit 2 ---------------------------------------------------------


def _edit_config(folder, **changes):
    path = folder / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _edit_weights(folder, drop=None, add=None):
    path = folder / "model.safetensors"
    state = load_file(str(path))
    if drop:
        del state[drop]
    state.update(add or {})
    save_file(state, str(path), metadata={"format": "pt"})


UNSUPPORTED = {
    "tied": (lambda f: _edit_config(f, tie_word_embeddings=True), "tied embeddings"),
    "attention-bias": (
        lambda f: _edit_config(f, attention_bias=True),
        "biases are not supported (attention_bias",
    ),
    "mlp-bias": (lambda f: _edit_config(f, mlp_bias=True), "biases are not supported (mlp_bias"),
    "rope-scaling": (
        lambda f: _edit_config(f, rope_scaling={"rope_type": "linear", "factor": 2.0}),
        "rope scaling",
    ),
    "rope-llama3": (lambda f: _edit_config(f, rope_parameters={"rope_type": "llama3"}), "rope scaling"),
    "gelu": (lambda f: _edit_config(f, hidden_act="gelu"), "hidden_act 'gelu'"),
    "mistral": (lambda f: _edit_config(f, model_type="mistral"), "only LlamaForCausalLM"),
    "missing": (
        lambda f: _edit_weights(f, drop="model.layers.1.mlp.up_proj.weight"),
        "model.layers.1.mlp.up_proj",
    ),
    "bias-tensor": (
        lambda f: _edit_weights(f, add={"model.layers.0.self_attn.q_proj.bias": torch.zeros(32)}),
        "q_proj.bias",
    ),
}


@pytest.mark.parametrize("case", UNSUPPORTED)
def test_what_toto_cannot_compute_is_one_error_line_and_exit_2(case, tmp_path, capsys):
    edit, words = UNSUPPORTED[case]
    save_checkpoint(_random_model(PLAIN), "src")
    export_hf("src", tmp_path / "hf")
    edit(tmp_path / "hf")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["import", "--hf", str(tmp_path / "hf"), "--name", "bad"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, f"an unsupported model must exit with 2, got {exit_info.value.code}"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), f"expected one error line, got {err!r}"
    assert words in lines[0], f"the line must name the problem ({words!r}): {lines[0]}"


def test_an_unknown_export_format_is_one_error_line(tmp_path, capsys):
    save_checkpoint(_random_model(PLAIN), "src")
    code, _, err = run_cli(
        capsys, "export", "--ckpt", "src", "--format", "onnx", "--out", str(tmp_path / "o")
    )
    assert code == 2 and "format 'onnx'" in err, f"an unknown format must be named: {err}"
    assert not (tmp_path / "o").exists(), "nothing may be written for a refused export"


def test_first_code_id_is_optional_and_kept_out_of_old_configs():
    data = PLAIN.to_dict()
    assert "first_code_id" not in data, "configs without the field must be saved as before"
    assert ModelConfig.from_dict(data) == PLAIN, "an old config must still load"
    lvm = PLAIN.replace(first_code_id=0, pad_id=36, video_start_id=37, end_id=38, image_start_id=39)
    assert (lvm.code_offset, lvm.num_codes) == (0, 36), "codes before the specials: ids 0 … 35"
    assert ModelConfig.from_dict(json.loads(json.dumps(lvm.to_dict()))) == lvm, "the field must round-trip"
