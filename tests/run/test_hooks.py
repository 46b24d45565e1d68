"""Hook points and layer specs: TransformerLens names on the native model, cleanup, and the spec grammar."""

import pytest
import torch
import torch.nn.functional as F
from helpers import reference_patterns
from hypothesis import given
from hypothesis import strategies as st

from toto_lens.model import Toto
from toto_lens.run import HookError, LayerSpecError, capture, hook_points, parse_layers


@pytest.fixture
def model(tiny_config):
    return Toto(tiny_config).eval()


def hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_captured_values_are_the_model_internals(model):
    x = torch.randint(4, 40, (2, 10))
    with torch.no_grad(), capture(model, ["hook_embed", "blocks.*.hook_resid_post", "blocks.0.mlp.hook_post",
                                          "blocks.1.attn.hook_z", "blocks.1.attn.hook_pattern"]) as cache:  # fmt: skip
        logits = model(x)
        emb = model.tok_embeddings(x)
        h = model.blocks[0](emb, model.rope_cos[:10], model.rope_sin[:10], None)
        mlp_in = model.blocks[0].ffn_norm(emb + model.blocks[0].attn(model.blocks[0].attention_norm(emb),
                                          model.rope_cos[:10], model.rope_sin[:10], None))  # fmt: skip
        patterns, _ = reference_patterns(model, x)
    torch.testing.assert_close(cache["hook_embed"], emb, msg="hook_embed is not the token embedding")
    torch.testing.assert_close(cache["blocks.0.hook_resid_post"], h, msg="resid_post is not block 0's output")
    post = F.silu(model.blocks[0].mlp.w1(mlp_in)) * model.blocks[0].mlp.w3(mlp_in)
    torch.testing.assert_close(
        cache["blocks.0.mlp.hook_post"], post, msg="mlp.hook_post is not silu(gate)·up"
    )
    assert cache["blocks.1.attn.hook_z"].shape == (2, 10, 4, 8), (
        "hook_z must be split into heads (B, T, H, hd)"
    )
    pattern = cache["blocks.1.attn.hook_pattern"]
    torch.testing.assert_close(pattern, patterns[1], msg="hook_pattern is not softmax(q·k) of block 1")
    torch.testing.assert_close(model(x), logits, msg="capturing must not change the output")
    assert all(b.attn.impl == "sdpa" for b in model.blocks), "the eager path must be switched back"


def test_rotated_queries_and_keys_give_the_pattern(model):
    x = torch.randint(4, 40, (2, 10))
    names = ["blocks.1.attn.hook_rot_q", "blocks.1.attn.hook_rot_k"]
    with torch.no_grad(), capture(model, names) as cache:
        model(x)
        patterns, _ = reference_patterns(model, x)
    q, k = cache[names[0]], cache[names[1]]
    assert q.shape == (2, 10, 4, 8) and k.shape == (2, 10, 4, 8), "rotated q/k are (B, T, H, hd), as in TL"
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) * model.blocks[1].attn.scale
    scores = scores.masked_fill(~torch.ones(10, 10, dtype=torch.bool).tril(), float("-inf"))
    torch.testing.assert_close(scores.softmax(-1), patterns[1], msg="the rotated q/k do not make the pattern")
    assert all(b.attn.impl == "sdpa" for b in model.blocks), "reading q/k must keep the fused path"


def test_hooks_are_gone_after_an_exception(model):
    before = hook_count(model)
    with (
        pytest.raises(RuntimeError, match="boom"),
        capture(model, ["blocks.*.attn.hook_pattern", "hook_embed"]),
    ):
        assert hook_count(model) == before + 3
        raise RuntimeError("boom")
    assert hook_count(model) == before, "hooks left behind after an exception"
    assert all(b.attn.impl == "sdpa" for b in model.blocks), "attention path not restored after an exception"


def test_callback_sees_every_layer_in_order_and_keeps_nothing(model):
    seen = []
    with capture(model, "blocks.*.hook_resid_post", lambda name, t: seen.append((name, t.shape))) as cache:
        model(torch.randint(4, 40, (1, 5)))
    assert [n for n, _ in seen] == ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"] and cache == {}


def test_unknown_hook_names_are_refused(model):
    with (
        pytest.raises(HookError, match="no hook point 'blocks.5.hook_resid_post'"),
        capture(model, ["blocks.5.hook_resid_post"]),
    ):
        pass
    assert hook_count(model) == 0
    assert len(hook_points(model)) == 2 + 17 * len(model.blocks)


@pytest.mark.parametrize(
    "spec, expected",
    [("all", [0, 1, 2, 3, 4]), ("mid", [2]), ("0,4", [0, 4]), ("1:4:2", [1, 3]), ("-1", [4]),
     ("-2,0", [0, 3]), ("3:", [3, 4]), (":2", [0, 1]), ("mid,-1", [2, 4]), ([4, 0], [0, 4]), (3, [3])],
)  # fmt: skip
def test_layer_specs(spec, expected):
    assert parse_layers(spec, 4) == expected


@pytest.mark.parametrize(
    "spec, words",
    [("5", "layer 5 is out of range"), ("-6", "layer -6 is out of range"), ("a", "'a' is not a layer number"),
     ("1:2:0", "step 0"), ("3:1", "selects no layer"), ("", "empty"), ("1,,2", "empty item"),
     ("1:2:3:4", "too many colons"), ("0:9", "reaches outside")],
)  # fmt: skip
def test_bad_layer_specs_name_the_valid_range(spec, words):
    with pytest.raises(LayerSpecError, match=words) as err:
        parse_layers(spec, 4)
    assert "layers 0…4" in str(err.value), "the message must name the valid range"


@given(
    n=st.integers(1, 40),
    start=st.one_of(st.none(), st.integers(-41, 41)),
    stop=st.one_of(st.none(), st.integers(-41, 41)),
    step=st.one_of(st.none(), st.integers(-5, 5).filter(bool)),
)
def test_slices_follow_python_slicing(n, start, stop, step):
    text = ":".join("" if v is None else str(v) for v in (start, stop, step))
    expected = sorted(set(list(range(n + 1))[slice(start, stop, step)]))
    in_range = all(v is None or -(n + 1) <= v <= n + 1 for v in (start, stop))
    if expected and in_range:
        assert parse_layers(text, n) == expected
    else:
        with pytest.raises(LayerSpecError):
            parse_layers(text, n)
