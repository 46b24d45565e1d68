"""Integrated gradients over earlier tokens (`run.attribution`): causality, completeness, and a model built
by hand to copy the previous frame's token at the same place, whose evidence must sit on that token."""

import numpy as np
import pytest
import torch

from toto_lens.config import ModelConfig
from toto_lens.data.layout import Layout
from toto_lens.model import Toto
from toto_lens.run.attribution import integrated_gradients, run_attribution
from toto_lens.run.hooks import capture

LAYOUT = Layout(frames=3, rows=2, cols=2)  # 4 tokens a frame, 14 positions with start and end


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=20, dim=32, n_layers=2, n_heads=2, ffn_dim=64, context_length=64)
    net = Toto(config).eval()
    with torch.no_grad():  # larger weights than the initialisation, so that every token matters
        for w in net.parameters():
            if w.ndim == 2:
                w.mul_(15.0)
    return net


def _clips(n, length, vocab, seed=0):
    ids = np.random.default_rng(seed).integers(4, vocab, size=(n, length))
    ids[:, 0] = 1  # the start token
    return ids


def test_positions_at_and_after_the_target_get_exactly_zero(model):
    # One batch of targets at different positions: the batch runs up to the last one, so the earlier
    # targets' own token and the tokens after them are fed too. Logits at p − 1 cannot see them; a
    # runner reading the logits at p (an off-by-one) would give the target's own token a share.
    ids = _clips(4, 40, 20)
    positions = np.array([5, 12, 23, 37])
    out = integrated_gradients(model, ids, positions, n_steps=8, batch=4)
    a = out["attribution"]
    for i, p in enumerate(positions):
        assert np.all(a[i, p:] == 0.0), f"target {i} at {p}: nonzero at/after it: {a[i, p:]}"
        assert np.count_nonzero(a[i, :p]) == p, f"every earlier token matters to this model: {a[i, :p]}"


def test_completeness_within_a_thousandth_of_the_change(model):
    ids = _clips(3, 30, 20, seed=1)
    positions = np.array([9, 17, 28])
    out = integrated_gradients(model, ids, positions, n_steps=48, batch=2)
    change = out["f_input"] - out["f_baseline"]
    total = out["attribution"].sum(-1)
    assert np.all(np.abs(change) > 0.05), f"the clip should move the prediction off the baseline: {change}"
    # captum's delta is Σ a − (F(x) − F(x')); F is recomputed here by the runner, independently.
    np.testing.assert_allclose(out["delta"], total - change, atol=1e-5)
    gap = np.abs(total - change) / np.abs(change)
    assert gap.max() < 1e-3, f"completeness gap {gap}: the path integral is not of F (or too coarse)"
    coarse = integrated_gradients(model, ids, positions, n_steps=2, batch=3)
    loose = np.abs(coarse["delta"]) / np.abs(coarse["f_input"] - coarse["f_baseline"])
    assert (coarse["steps"] > 2).any(), "2 steps are too few: the loose targets run again with more"
    assert (loose <= 0.01).all() or (coarse["steps"] == 256).all(), (coarse["steps"], loose)
    # F is the log-probability of the real token at p read from the logits at p − 1.
    with torch.no_grad():
        logp = model(torch.as_tensor(ids)).log_softmax(-1).numpy()
    want = logp[np.arange(3), positions - 1, ids[np.arange(3), positions]]
    np.testing.assert_allclose(out["f_input"], want, rtol=1e-5)


def copy_model(layout, vocab=12, sharp=60.0, gain=12.0):
    """One attention layer that copies the token one frame back at the same place, and nothing else.

    Residual stream: the token's one-hot in dims [0, V), a constant in dim V (queries and keys read only
    it), and the copied one-hot in [V + 1, 2V + 1) (the head's output, all the output head reads). The
    rotary phases put every query's largest score on the key K − 1 positions back (K tokens a frame):
    the query at p − 1 predicts the token at p from the token at p − K. The MLPs are zero.
    """
    k_back = layout.tokens_per_frame - 1
    dim = 2 * vocab + 2  # even head dim for the rotary pairs
    config = ModelConfig(vocab_size=vocab, dim=dim, n_layers=1, n_heads=1, ffn_dim=4,
                         context_length=layout.length)  # fmt: skip
    net = Toto(config).eval()
    half = dim // 2
    theta = config.rope_base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    q0 = torch.zeros(dim, dtype=torch.float64)
    k0 = torch.zeros(dim, dtype=torch.float64)
    q0[:half] = 1.0  # each rotary pair (i, i + half)
    k0[:half], k0[half:] = torch.cos(theta * k_back), torch.sin(theta * k_back)
    with torch.no_grad():
        for w in net.parameters():
            w.zero_() if w.ndim == 2 else None
        emb = net.tok_embeddings.weight
        emb[:, :vocab] = torch.eye(vocab)
        emb[:, vocab] = 4.0  # the constant: the norms hardly change along the path
        attn = net.blocks[0].attn
        attn.wq.weight[:, vocab] = (sharp * q0).float()
        attn.wk.weight[:, vocab] = k0.float()
        attn.wv.weight[:vocab, :vocab] = torch.eye(vocab)
        attn.wo.weight[vocab + 1 : 2 * vocab + 1, :vocab] = torch.eye(vocab)
        net.output.weight[:, vocab + 1 : 2 * vocab + 1] = gain * torch.eye(vocab)
    return net


def test_the_copy_model_attends_one_frame_back_at_the_same_place():
    net = copy_model(LAYOUT)
    ids = torch.as_tensor(LAYOUT.pack(np.random.default_rng(0).integers(0, 8, size=(1, 3, 2, 2))))
    with torch.no_grad(), capture(net, ["blocks.0.attn.hook_pattern"]) as acts:
        net(ids)
    pattern = acts["blocks.0.attn.hook_pattern"][0, 0]
    K = LAYOUT.tokens_per_frame
    for q in range(K - 1, LAYOUT.length):
        assert pattern[q, q - (K - 1)] > 0.99, f"query {q} should look {K - 1} back: {pattern[q]}"


def test_a_copy_model_puts_the_mass_on_the_previous_frames_same_place():
    net = copy_model(LAYOUT)
    codes = np.random.default_rng(3).integers(0, 8, size=(6, 3, 2, 2))
    codes[:, 1:] = codes[:, :1]  # the clips repeat their first frame: the copy predicts them
    ids = LAYOUT.pack(codes)
    positions = np.array([LAYOUT.position(f, r, c) for f, r, c in
                          [(1, 0, 0), (1, 1, 1), (2, 0, 1), (2, 1, 0), (1, 0, 1), (2, 1, 1)]])  # fmt: skip
    frame, row, col = LAYOUT.frame_of_position, LAYOUT.row_of_position, LAYOUT.col_of_position
    result = run_attribution(net, ids, positions, frame, row, col, n_steps=32, batch=3)
    same, other = result["same_place_abs"].values, result["prev_other_abs"].values
    assert same.min() > 0.8, f"the copied token should hold most of the mass: {same}"
    assert (same > 20 * other).all(), f"against one other place of that frame: {same} vs {other}"
    assert float(result["share_abs"].sel(dframe=-1).mean()) > 0.8
    assert (result["gap_relative"].values < 0.01).all(), result["gap_relative"].values
    # The same model on a target one frame later than the copy looks: frame 2's source is frame 1.
    np.testing.assert_allclose(result["share_abs"].sel(dframe=-2).values, 0.0, atol=0.05)
