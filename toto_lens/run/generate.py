"""Sampling whole clips from a model: frame after frame of visual codes, with the KV cache.

`generate_clips(model, layout, ...)` writes the start token, keeps the prompt frames as given, samples the
remaining frames token by token over the visual codes only (pad, start and end ids get probability zero),
and writes the end token at the last position. `Sampling` holds temperature (0 = greedy), top-k, top-p
(nucleus, after top-k) and the seed of the `torch.Generator` that makes a run reproducible on any device.

With the cache the prompt (or the window, see below) goes through the model once and then one token a
step; `use_cache=False` recomputes the whole prefix for every token (the baseline; greedy decoding gives
the same tokens either way).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from toto_lens.errors import ConfigError
from toto_lens.progress import Progress, report


@dataclass(frozen=True)
class Sampling:
    """How the next code is drawn: temperature 0 is greedy; top_k, then top_p (nucleus) trim the rest."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.temperature >= 0:  # also refuses NaN
            raise ConfigError(f"sampling: temperature must be ≥ 0 (0 = greedy), got {self.temperature}")
        if self.top_k is not None and (
            isinstance(self.top_k, bool) or int(self.top_k) != self.top_k or self.top_k < 1
        ):
            raise ConfigError(f"sampling: top_k must be a positive integer or None, got {self.top_k!r}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ConfigError(f"sampling: top_p must lie in (0, 1] or be None, got {self.top_p}")


def sample_next(logits: Any, blocked: Any, sampling: Sampling, generator: Any) -> Any:
    """Next ids (B,) from logits (B, V): `blocked` (V,) bool ids never drawn; greedy at temperature 0."""
    import torch

    logits = logits.float().masked_fill(blocked, float("-inf"))
    if sampling.temperature == 0:
        return logits.argmax(-1)
    logits = logits / sampling.temperature
    if sampling.top_k is not None:
        k = min(int(sampling.top_k), int((~blocked).sum()))
        kth = torch.topk(logits, k).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if sampling.top_p is not None and sampling.top_p < 1:
        ordered, order = logits.sort(-1, descending=True)
        probs = torch.softmax(ordered, -1)
        # Drop a code once the more likely ones already hold top_p of the mass (the first always stays).
        drop = (probs.cumsum(-1) - probs) >= sampling.top_p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    probs = torch.softmax(logits, -1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def context_frames(config: Any, layout: Any) -> int:
    """Frames one window holds: the layout's, fewer when start + frames + end exceed the context length."""
    fit = (config.context_length - 2) // layout.tokens_per_frame
    if fit < 1:
        raise ConfigError(
            f"one frame of {layout.tokens_per_frame} tokens plus start and end does not fit the model's "
            f"context of {config.context_length} tokens"
        )
    return min(layout.frames, fit)


def generate_clips(
    model: Any,
    layout: Any,
    *,
    start: str = "video",
    prompts: np.ndarray | None = None,
    n_clips: int = 1,
    frames: int | None = None,
    sampling: Sampling = Sampling(),
    use_cache: bool = True,
    progress: Progress | None = None,
) -> np.ndarray:
    """(clips, 1 + frames·R·C + 1) int64 ids: the start token (`layout.start_ids[start]`: [1] video,
    [3] images), the prompt frames unchanged, then sampled frames up to `frames` in all (default
    `layout.frames`), then the end token (written, never sampled).

    model: a Toto or a loaded Checkpoint. prompts: (clips, k·R·C) token ids of the first k ≥ 0 frames
    (one row is shared by all `n_clips`), or None. Every sampled token is a visual code: ids outside
    [code_offset, code_offset + num_codes) are masked. Runs in inference mode on the model's device and
    dtype; the KV cache is freed on exit.

    Past the training context (`frames` beyond `layout.frames`, or start + frames + end longer than the
    model's context length) generation slides over whole frames: with W the frames one window holds
    (`context_frames`), frame f ≥ W is generated from [start] + frames f−W+1 … f−1, with positions
    renumbered from 0 (rotary positions are relative, the start token stays at 0), and the cache is
    rebuilt from that window for each new frame. Frames before W see the whole clip so far, so the first
    frames equal a generation of `layout.frames` frames.
    """
    import torch

    net = getattr(model, "model", model)
    config = net.config
    if start not in layout.start_ids:
        raise ConfigError(f"unknown start {start!r}; choose one of: {', '.join(layout.start_ids)}")
    if layout.code_offset != config.code_offset:
        raise ConfigError(
            f"the layout's code offset {layout.code_offset} differs from the model's {config.code_offset}"
        )
    tpf, lo, hi = layout.tokens_per_frame, config.code_offset, config.code_offset + config.num_codes
    frames = layout.frames if frames is None else int(frames)
    prompt = np.zeros((n_clips, 0), np.int64) if prompts is None else np.asarray(prompts, np.int64)
    if prompt.ndim != 2 or prompt.shape[1] % tpf or len(prompt) not in (1, n_clips):
        raise ConfigError(
            f"prompts must be ({n_clips} or 1, k·{tpf}) token ids of whole frames, got shape {prompt.shape}"
        )
    if prompt.size and (prompt.min() < lo or prompt.max() >= hi):
        raise ConfigError(
            f"prompts must hold visual code ids in [{lo}, {hi}), got {prompt.min()}…{prompt.max()}"
        )
    k = prompt.shape[1] // tpf
    if n_clips < 1 or frames < max(k, 1):
        raise ConfigError(f"need n_clips ≥ 1 and frames ≥ max(1, prompt frames {k}), got {n_clips}, {frames}")
    window = context_frames(config, layout)

    device = next(net.parameters()).device
    seq = torch.empty(n_clips, frames * tpf + 2, dtype=torch.int64, device=device)
    seq[:, 0] = layout.start_ids[start]
    seq[:, 1 : 1 + k * tpf] = torch.as_tensor(prompt, device=device)
    seq[:, -1] = layout.end_id
    blocked = torch.ones(config.vocab_size, dtype=torch.bool, device=device)
    blocked[lo:hi] = False
    generator = torch.Generator(device=device).manual_seed(int(sampling.seed))
    # The cached window: frame offset of its first frame after the start token, and tokens already fed.
    cached = {"offset": -1, "fed": 0}

    def next_logits(pos: int, offset: int) -> Any:
        """Logits for position `pos` from the window [start] + seq[1 + offset·tpf : pos]."""
        first = 1 + offset * tpf  # seq index of the window's position 1
        length = pos - first + 1  # tokens in the window
        if not use_cache:
            return net(torch.cat([seq[:, :1], seq[:, first:pos]], dim=1))[:, -1]
        if cached["offset"] != offset:  # a new window: rebuild the cache from position 0
            cached.update(offset=offset, fed=0)
        fed = cached["fed"]
        new = torch.cat([seq[:, :1], seq[:, first:pos]], dim=1) if fed == 0 else seq[:, first + fed - 1 : pos]
        cached["fed"] = length
        return net(new, torch.arange(fed, length, device=device))[:, -1]

    was_training = net.training
    net.eval()
    try:
        with torch.inference_mode():
            if use_cache:
                net.setup_caches(n_clips, min(window, frames) * tpf)  # the longest window fed
            for f in range(k, frames):
                offset = max(0, f - window + 1)
                for pos in range(1 + f * tpf, 1 + (f + 1) * tpf):
                    seq[:, pos] = sample_next(next_logits(pos, offset), blocked, sampling, generator)
                report(progress, "generate", f - k + 1, frames - k, "frames")
    finally:
        net.reset_caches()
        net.train(was_training)
    return seq.cpu().numpy()
