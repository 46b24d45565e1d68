"""Clip generation: the KV cache changes nothing but speed, only visual codes are drawn, the sliding window."""

import numpy as np
import pytest
import torch

from toto_lens import Toto
from toto_lens.data.layout import Layout
from toto_lens.errors import ConfigError
from toto_lens.run.generate import Sampling, context_frames, generate_clips

GREEDY = Sampling(temperature=0)


def _model(config, seed=0):
    torch.manual_seed(seed)
    model = Toto(config)
    model.init_weights()
    return model.eval()


@pytest.fixture
def layout():
    return Layout(frames=3, rows=2, cols=4)  # 8 tokens a frame, 26 a clip: fits the context of 64


def _prompt(config, layout, clips, k, seed=1):
    g = torch.Generator().manual_seed(seed)
    hi = config.code_offset + config.num_codes
    return torch.randint(config.code_offset, hi, (clips, k * layout.tokens_per_frame), generator=g).numpy()


def test_greedy_with_the_cache_equals_recomputing_the_prefix(any_config, layout):
    model = _model(any_config)
    prompts = _prompt(any_config, layout, 2, 1)
    cached = generate_clips(model, layout, prompts=prompts, n_clips=2, sampling=GREEDY)
    plain = generate_clips(model, layout, prompts=prompts, n_clips=2, sampling=GREEDY, use_cache=False)
    assert cached.shape == (2, layout.length) and cached.dtype == np.int64
    mismatch = np.argwhere(cached != plain)
    assert not len(mismatch), (
        f"the KV cache changed greedy tokens at (clip, position) {mismatch[:3].tolist()}"
    )
    assert model.blocks[0].attn.kv_cache is None, "generate_clips must free the KV cache"
    # Not vacuous: the clips differ from each other and from a constant.
    assert len(np.unique(cached[:, 1:-1])) > 2


def test_seed_makes_sampling_reproducible(tiny_config, layout):
    model = _model(tiny_config)
    a, b = (generate_clips(model, layout, n_clips=2, sampling=Sampling(seed=7)) for _ in range(2))
    c = generate_clips(model, layout, n_clips=2, sampling=Sampling(seed=8))
    assert np.array_equal(a, b), "the same seed must give the same clips"
    assert not np.array_equal(a, c), "a different seed gave the same clips: the seed is not used"
    d = generate_clips(model, layout, n_clips=2, sampling=Sampling(seed=7), use_cache=False)
    assert np.array_equal(a, d), "sampling with and without the cache must draw the same tokens"


@pytest.mark.parametrize("k", [0, 1, 2])
def test_prompt_frames_come_back_unchanged(tiny_config, layout, k):
    model = _model(tiny_config)
    prompts = _prompt(tiny_config, layout, 3, k)
    out = generate_clips(model, layout, start="images", prompts=prompts, n_clips=3, sampling=Sampling(seed=1))
    assert (out[:, 0] == layout.image_start_id).all(), "the images start token must open every clip"
    assert np.array_equal(out[:, 1 : 1 + prompts.shape[1]], prompts), f"the {k} prompt frames were changed"


def test_special_ids_never_drawn_even_when_most_likely(tiny_config, layout):
    model = _model(tiny_config)
    specials = list(tiny_config.special_ids)
    bias = torch.zeros(tiny_config.vocab_size)
    bias[specials] = 100.0  # every special id far ahead of any code
    model.output.register_forward_hook(lambda module, args, out: out + bias)
    with torch.no_grad():
        logits = model(torch.tensor([[layout.video_start_id, 5, 6]]))
    assert set(logits.argmax(-1).flatten().tolist()) <= set(specials), "test setup: specials must lead"
    for sampling in (GREEDY, Sampling(seed=3), Sampling(temperature=5.0, top_p=0.999, seed=4)):
        out = generate_clips(model, layout, n_clips=4, sampling=sampling)
        visual = out[:, layout.visual]
        assert visual.min() >= layout.code_offset, f"{sampling}: a special id was drawn at a visual position"
        assert visual.max() < tiny_config.code_offset + tiny_config.num_codes
        assert (out[:, -1] == layout.end_id).all() and (out[:, 0] == layout.video_start_id).all()


def test_top_k_one_and_tiny_top_p_are_greedy(tiny_config, layout):
    model = _model(tiny_config)
    greedy = generate_clips(model, layout, n_clips=2, sampling=GREEDY)
    top1 = generate_clips(model, layout, n_clips=2, sampling=Sampling(temperature=1.5, top_k=1, seed=5))
    nucleus = generate_clips(model, layout, n_clips=2, sampling=Sampling(temperature=1.5, top_p=1e-6, seed=5))
    free = generate_clips(model, layout, n_clips=2, sampling=Sampling(temperature=1.5, seed=5))
    assert np.array_equal(top1, greedy), "top_k=1 must keep only the most likely code"
    assert np.array_equal(nucleus, greedy), "a tiny top_p must keep only the most likely code"
    assert not np.array_equal(free, greedy), "plain sampling equals greedy: the test would be vacuous"


def _record_windows(model):
    """(tokens fed, first input position) of every forward call."""
    calls = []
    hook = model.register_forward_pre_hook(
        lambda m, args: calls.append((args[0].shape[1], None if len(args) < 2 else int(args[1][0])))
    )
    return calls, hook


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("shape", [(3, 2, 4), (4, 4, 4)], ids=["layout-frames", "context-length"])
def test_sliding_window_past_the_context(tiny_config, shape, use_cache):
    layout = Layout(*shape)  # (4, 4, 4): start + 64 tokens + end is longer than the context of 64
    tpf, ctx = layout.tokens_per_frame, tiny_config.context_length
    window = context_frames(tiny_config, layout)
    assert window == min(layout.frames, 3)
    model = _model(tiny_config)
    frames = window + 4
    calls, hook = _record_windows(model)
    try:
        out = generate_clips(model, layout, frames=frames, n_clips=2, sampling=GREEDY, use_cache=use_cache)
    finally:
        hook.remove()
    assert out.shape == (2, frames * tpf + 2) and (out[:, -1] == layout.end_id).all()
    # Every forward stays inside the window: tokens given plus the cached ones.
    ends = [n + (pos or 0) for n, pos in calls]
    assert window * tpf <= ctx - 2, "a window must fit the context with start and end"
    assert max(ends) == window * tpf, f"the largest window holds {max(ends)} tokens, not {window} frames"
    if use_cache:
        rebuilds = sum(pos == 0 for _, pos in calls)
        assert rebuilds == 1 + frames - window, "the cache must be rebuilt once for each sliding frame"
    # The first frames are a plain generation.
    plain = generate_clips(model, layout, frames=window, n_clips=2, sampling=GREEDY, use_cache=use_cache)
    assert np.array_equal(out[:, : 1 + window * tpf], plain[:, :-1])
    # A sliding frame f is what the model makes of [start] + the W − 1 frames before it.
    for f in (window, frames - 1):
        before = out[:, 1 + (f - window + 1) * tpf : 1 + f * tpf]
        again = generate_clips(model, layout, prompts=before, frames=window, n_clips=2, sampling=GREEDY)
        assert np.array_equal(
            again[:, 1 + (window - 1) * tpf : -1], out[:, 1 + f * tpf : 1 + (f + 1) * tpf]
        ), f"frame {f} is not generated from the window of the {window - 1} frames before it"


def test_sliding_window_cache_equals_recompute(tiny_config):
    layout = Layout(3, 2, 4)
    model = _model(tiny_config, seed=2)
    a = generate_clips(model, layout, frames=6, n_clips=2, sampling=Sampling(seed=9))
    b = generate_clips(model, layout, frames=6, n_clips=2, sampling=Sampling(seed=9), use_cache=False)
    assert np.array_equal(a, b)


def test_progress_reports_frames(tiny_config, layout):
    events = []
    generate_clips(
        _model(tiny_config), layout, prompts=_prompt(tiny_config, layout, 1, 1), progress=events.append
    )
    assert [(e.task, e.done, e.total, e.unit) for e in events] == [
        ("generate", 1, 2, "frames"),
        ("generate", 2, 2, "frames"),
    ]


@pytest.mark.parametrize(
    "kwargs, word",
    [({"temperature": -0.1}, "temperature"), ({"top_k": 0}, "top_k"), ({"top_p": 0.0}, "top_p"),
     ({"top_p": 1.5}, "top_p"), ({"temperature": float("nan")}, "temperature")],
)  # fmt: skip
def test_bad_sampling_raises_one_line(kwargs, word):
    with pytest.raises(ConfigError) as err:
        Sampling(**kwargs)
    message = str(err.value)
    assert word in message and "\n" not in message


def test_bad_inputs_raise_config_errors(tiny_config, layout):
    model = _model(tiny_config)
    with pytest.raises(ConfigError, match="start"):
        generate_clips(model, layout, start="audio")
    with pytest.raises(ConfigError, match="whole frames"):
        generate_clips(model, layout, prompts=np.full((1, 5), 5))
    with pytest.raises(ConfigError, match="visual code"):
        generate_clips(model, layout, prompts=np.full((1, 8), 2))
    with pytest.raises(ConfigError, match="frames"):
        generate_clips(model, layout, prompts=_prompt(tiny_config, layout, 1, 2), frames=1)
