"""The model's contract: causal, cache-consistent, two attention paths that agree, relative RoPE."""

import math

import pytest
import torch
from helpers import reference_patterns
from torch.testing import assert_close

from toto_lens import Toto
from toto_lens.model import apply_rope, rope_table


def _tokens(config, B=2, T=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, config.vocab_size, (B, T), generator=g)


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_causality(any_config, impl):
    model = Toto(any_config).eval().set_attn_impl(impl)
    x = _tokens(any_config)
    with torch.no_grad():
        ref = model(x)
        for t in (0, 5, x.shape[1] - 1):
            y = x.clone()
            y[:, t] = (y[:, t] + 1) % any_config.vocab_size
            out = model(y)
            # Earlier positions must not see the change; position t itself must (else the test is vacuous).
            assert torch.equal(out[:, :t], ref[:, :t]), f"changing token {t} changed logits before it"
            assert not torch.allclose(out[:, t], ref[:, t])


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_kv_cache_token_by_token_equals_full_forward(any_config, impl):
    model = Toto(any_config).eval().set_attn_impl(impl)
    x = _tokens(any_config, T=20)
    with torch.no_grad():
        full = model(x)
        model.setup_caches(x.shape[0], x.shape[1])
        steps = [model(x[:, t : t + 1], torch.tensor([t])) for t in range(x.shape[1])]
    cached = torch.cat(steps, dim=1)
    assert (cached - full).abs().max().item() <= 1e-5


def test_kv_cache_prefill_then_decode(any_config):
    model = Toto(any_config).eval()
    x = _tokens(any_config, T=20)
    with torch.no_grad():
        full = model(x)
        model.setup_caches(x.shape[0])
        first = model(x[:, :12], torch.arange(12))
        rest = model(x[:, 12:], torch.arange(12, 20))
    assert_close(torch.cat([first, rest], 1), full, atol=1e-5, rtol=0)


def test_eager_and_sdpa_agree(any_config):
    model = Toto(any_config).eval()
    x = _tokens(any_config, T=32)
    with torch.no_grad():
        sdpa = model(x)
        eager = model.set_attn_impl("eager")(x)
    assert (sdpa - eager).abs().max().item() <= 1e-5, "the two attention paths compute different functions"


def test_hook_pattern_sees_the_pattern_the_weights_give(any_config):
    model = Toto(any_config).eval().set_attn_impl("eager")
    x = _tokens(any_config, T=32)
    with torch.no_grad():
        expected, _ = reference_patterns(model, x)
    seen = []
    for block in model.blocks:
        block.attn.hook_pattern.register_forward_hook(lambda m, i, o: seen.append(o))
    with torch.no_grad():
        model(x)
    assert len(seen) == any_config.n_layers, "every eager layer passes its pattern through hook_pattern"
    p = seen[0]
    assert p.shape == (2, any_config.n_heads, 32, 32)
    assert_close(p.sum(-1), torch.ones(p.shape[:-1]))
    assert torch.all(p.triu(1) == 0), "attention to future positions"
    for got, want in zip(seen, expected, strict=True):
        assert_close(got, want, atol=1e-6, rtol=0)


def test_rope_scores_depend_only_on_relative_position():
    hd, length = 16, 64
    cos, sin = rope_table(hd, length, 10_000.0)
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(1, 1, 1, hd, generator=g), torch.randn(1, 1, 1, hd, generator=g)

    def score(i, j):
        qi = apply_rope(q, cos[i : i + 1], sin[i : i + 1])
        kj = apply_rope(k, cos[j : j + 1], sin[j : j + 1])
        return (qi * kj).sum().item()

    for offset in (0, 3, 17):
        scores = [score(i + offset, i) for i in (0, 5, 30, 40)]
        assert max(scores) - min(scores) < 1e-4, f"offset {offset}: {scores}"
    assert abs(score(10, 0) - score(3, 0)) > 1e-3, "different offsets should give different scores"


def test_rope_preserves_norm():
    cos, sin = rope_table(8, 10, 10_000.0)
    x = torch.randn(2, 3, 10, 8)
    assert_close(apply_rope(x, cos, sin).norm(dim=-1), x.norm(dim=-1))


def test_no_biases_and_residual_init(tiny_config):
    model = Toto(tiny_config)
    assert not any(name.endswith("bias") for name, _ in model.named_parameters())
    wq = model.blocks[0].attn.wq.weight.std().item()
    wo = model.blocks[0].attn.wo.weight.std().item()
    assert wq == pytest.approx(0.02, rel=0.2)
    assert wo == pytest.approx(0.02 / math.sqrt(2 * tiny_config.n_layers), rel=0.2)


def test_llama_parameter_names_load(any_config):
    """Meta/gpt-fast names (layers.N.attention.wq, interleaved rotary rows) load through
    `toto_lens.convert`, never silently through load_state_dict, and compute the same logits."""
    from toto_lens.convert import to_llama_state, to_toto_state

    model = Toto(any_config).eval()
    meta = to_llama_state(model.state_dict(), any_config, "meta")
    assert "layers.0.attention.wq.weight" in meta, "the Meta layout must use LLaMA's parameter names"
    with pytest.raises(RuntimeError, match="Missing key"):
        Toto(any_config).load_state_dict(meta)  # a rename alone would compute another function
    other = Toto(any_config).eval()
    other.load_state_dict(to_toto_state(meta, any_config))
    for k, v in model.state_dict().items():
        assert torch.equal(other.state_dict()[k], v), f"{k} changed through the Meta layout and back"
    x = _tokens(any_config)
    with torch.no_grad():
        assert torch.equal(other(x), model(x)), "converted weights must compute the same logits"


def test_generate_greedy_matches_argmax_of_full_forward(tiny_config):
    model = Toto(tiny_config).eval()
    prompt = _tokens(tiny_config, B=2, T=5)
    out = model.generate(prompt, 6, temperature=0)
    assert out.shape == (2, 11) and torch.equal(out[:, :5], prompt)
    with torch.no_grad():
        logits = model(out)
    assert torch.equal(logits[:, 4:-1].argmax(-1), out[:, 5:])
    assert model.blocks[0].attn.kv_cache is None, "generate must free its caches"


def test_too_long_sequence_is_refused(tiny_config):
    with pytest.raises(ValueError, match="context length"):
        Toto(tiny_config)(torch.zeros(1, tiny_config.context_length + 1, dtype=torch.long))


def test_backward_reaches_every_parameter(tiny_config):
    model = Toto(tiny_config)
    x = _tokens(tiny_config)
    loss = torch.nn.functional.cross_entropy(model(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten())
    loss.backward()
    assert loss.item() == pytest.approx(math.log(tiny_config.vocab_size), rel=0.1)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
