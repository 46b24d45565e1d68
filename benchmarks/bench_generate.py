"""Clip generation: `generate_clips` with the KV cache against recomputing the whole prefix for every token.

For each model (untrained weights: the time of a forward pass does not depend on the weights), one clip of
8×8-token frames (the CPU variants' layout, 16 frames of 64 tokens): a prompt of `--prompt` frames, then
`--frames` frames generated greedily, so that both sides make the same tokens (checked). The same call
runs with `use_cache=True` (the prompt through the model once, then one token a step) and
`use_cache=False` (every step runs [start] + everything so far); each side's fastest of `--rounds` runs
after one warm-up. Prints generated tokens per second, side by side, and the ratio.

One thread by default: a decoding step works on one token, and on a busy machine a second thread spends
more time waiting for its partner than computing (small ops then take milliseconds instead of microseconds).

Usage: python benchmarks/bench_generate.py [--models toto-tiny toto-small] [--prompt 1] [--frames 2]
       [--rounds 3] [--threads 1]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _timing import best_of

from toto_lens import Toto, variants
from toto_lens.data.layout import Layout
from toto_lens.run.generate import Sampling, generate_clips


def bench(name: str, prompt_frames: int, frames: int, rounds: int) -> dict:
    config = variants()[name]
    layout = Layout.for_model(16, 8, 8, config)
    torch.manual_seed(0)
    model = Toto(config).eval()
    rng = np.random.default_rng(0)
    lo, n = config.code_offset, config.num_codes
    prompts = (
        rng.integers(lo, lo + n, (1, prompt_frames * layout.tokens_per_frame)) if prompt_frames else None
    )
    total = prompt_frames + frames
    tokens = frames * layout.tokens_per_frame

    def run(use_cache: bool) -> np.ndarray:
        return generate_clips(
            model,
            layout,
            prompts=prompts,
            frames=total,
            sampling=Sampling(temperature=0),
            use_cache=use_cache,
        )

    t_cache, a = best_of(lambda: run(True), rounds)
    t_plain, b = best_of(lambda: run(False), rounds)
    return {"model": name, "tokens": tokens, "cache": tokens / t_cache, "plain": tokens / t_plain,
            "ratio": t_plain / t_cache, "same": bool(np.array_equal(a, b))}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["toto-tiny", "toto-small"])
    parser.add_argument("--prompt", type=int, default=1, help="prompt frames (64 tokens each)")
    parser.add_argument("--frames", type=int, default=2, help="frames generated after the prompt")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="1: single-token steps are too small to share")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; one clip, {args.prompt} prompt "
          f"frame(s), {args.frames} generated (greedy), best of {args.rounds}")  # fmt: skip
    print(f"{'model':<12} {'tokens':>6} {'kv-cache tok/s':>15} {'recompute tok/s':>16} {'ratio':>7}  same")
    for name in args.models:
        r = bench(name, args.prompt, args.frames, args.rounds)
        print(f"{r['model']:<12} {r['tokens']:>6} {r['cache']:>15,.0f} {r['plain']:>16,.0f} "
              f"{r['ratio']:>6.2f}×  {r['same']}")  # fmt: skip


if __name__ == "__main__":
    main()
