"""One clip's attention patterns through `capture`, pinned to patterns recomputed from the weights by hand."""

import numpy as np
import pytest
import torch
from helpers import reference_patterns

from toto_lens.analysis import AnalysisError
from toto_lens.analysis.attention import attention_distances, frame_mass
from toto_lens.data.layout import Layout
from toto_lens.model import Toto
from toto_lens.run.attention import clip_attention_summary, clip_patterns

LAYOUT = Layout(3, 2, 3)  # 20 tokens, inside the tiny context of 64


@pytest.fixture
def model(any_config):
    return Toto(any_config).eval()


@pytest.fixture
def clip():
    return LAYOUT.pack(np.random.default_rng(0).integers(0, 30, (3, 2, 3)))


def test_clip_patterns_are_the_reference_patterns_of_the_chosen_layers(model, clip):
    with torch.no_grad():
        reference, _ = reference_patterns(model, torch.as_tensor(clip)[None])
    got = clip_patterns(model, clip[None], [2, 1])
    assert got.dims == ("layer", "head", "qpos", "kpos") and got["layer"].values.tolist() == [2, 1]
    for layer in (1, 2):
        np.testing.assert_allclose(
            got.sel(layer=layer).values, reference[layer - 1][0].numpy(), atol=1e-6,
            err_msg="layer l should be block l − 1's pattern of this one clip",
        )  # fmt: skip
    assert all(b.attn.impl == "sdpa" for b in model.blocks), "the fast attention path should be restored"
    assert not any(b.attn.hook_pattern._forward_hooks for b in model.blocks), "hooks should be removed"


def test_the_summary_reduces_each_layer_as_the_pure_functions_do(model, clip):
    with torch.no_grad():
        reference, _ = reference_patterns(model, torch.as_tensor(clip)[None])
    s = clip_attention_summary(model, clip, LAYOUT)
    assert s["layer"].values.tolist() == [1, 2] and s["depth"].values.tolist() == [0.5, 1.0], "every block"
    for layer in (1, 2):
        pattern = reference[layer - 1][0].numpy()
        expected = attention_distances(pattern, LAYOUT, dims=["head"])
        for name in expected.data_vars:
            np.testing.assert_allclose(s[name].sel(layer=layer), expected[name], rtol=1e-5, err_msg=name)
        np.testing.assert_allclose(
            s["frame_mass"].sel(layer=layer), frame_mass(pattern, LAYOUT, dims=["head"]), rtol=1e-5,
            err_msg="frame-to-frame mass of the clip",
        )  # fmt: skip


def test_wrong_layers_and_clips_are_one_line_errors(model, clip):
    with pytest.raises(AnalysisError, match="layers 1 … 2"):
        clip_patterns(model, clip, [0])
    with pytest.raises(AnalysisError, match=r"\(T,\) or \(1, T\)"):
        clip_patterns(model, np.stack([clip, clip]), [1])
    with pytest.raises(AnalysisError, match="longer than the context"):
        clip_patterns(model, np.zeros(100, dtype=int), [1])
