"""n-gram counting speed against a plain baseline, side by side in one run; prints ratios.

Counts 1-, 2- and 3-grams over 10,000 frames of 8×8 token ids (the Toto appendix A.9 setting at the
bundled data's grid) for a 512-code and a 32,768-code vocabulary, with `ngram_counts` (int64 keys,
`np.bincount` or `np.unique`) and with `collections.Counter` over tuples, the way one would write it
first. The ids are not uniform noise: they quantise a smooth random field (3 channels, coarse noise
interpolated to 8×8, skewed quantiles), so neighbouring tokens are correlated and the counts have a
realistic head and long tail.
The Counter baseline runs on `--baseline-frames` frames and is extrapolated linearly when that is fewer
than all (the output says so); both are checked to give the same counts on those frames.

Usage: python benchmarks/bench_ngrams.py [--frames 10000] [--baseline-frames 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
from _timing import best_of

from toto_lens.analysis.ngrams import decode_ngram_keys, ngram_counts, ngram_stats

# Codes per channel: 8^3 = 512 and 32^3 = 32,768, one level per channel and code.
LEVELS = {512: 8, 32768: 32}


def smooth_ids(frames: int, vocab: int, grid: int = 8, seed: int = 0) -> np.ndarray:
    """Token ids [frame, row, col] from a quantised smooth 3-channel random field."""
    rng = np.random.default_rng(seed)
    coarse = rng.standard_normal((frames, 3, 3, 3))  # (frame, channel, 3, 3)
    # Linear interpolation 3 → grid along each axis as one matrix: (grid, 3)
    pos = np.linspace(0, 2, grid)
    interp = np.maximum(0, 1 - np.abs(pos[:, None] - np.arange(3)[None, :]))
    field = interp @ coarse @ interp.T + 0.2 * rng.standard_normal((frames, 3, grid, grid))
    # Quantise each channel by its quantile u in (0, 1) to floor(levels · u²): low levels fill up far more
    # than high ones, so code usage is skewed (a Zipf-like head, a few dead codes at V = 32,768) as with
    # learned codebooks, instead of every code being equally common.
    levels = LEVELS[vocab]
    flat = field.transpose(1, 0, 2, 3).reshape(3, -1)  # (channel, frame·row·col)
    quantile = (flat.argsort(axis=1).argsort(axis=1) + 0.5) / flat.shape[1]
    digits = np.floor(levels * quantile**2).astype(np.int64)
    codes = (digits[0] * levels + digits[1]) * levels + digits[2]
    return codes.reshape(frames, grid, grid).astype(np.int32)


def counter_baseline(ids: np.ndarray, n: int) -> Counter:
    counts: Counter = Counter()
    for frame in ids.reshape(ids.shape[0], -1).tolist():
        counts.update(zip(*(frame[k : len(frame) - n + 1 + k] for k in range(n)), strict=True))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--baseline-frames", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sub = min(args.baseline_frames, args.frames)
    scale = args.frames / sub
    note = "" if sub == args.frames else f" (Counter on {sub:,} frames, ×{scale:.1f} extrapolated)"
    print(f"{args.frames:,} frames of 8x8 ids, best of {args.repeat}{note}")
    for vocab in LEVELS:
        ids = smooth_ids(args.frames, vocab)
        used = len(np.unique(ids))
        print(f"vocab {vocab:,} ({used:,} codes used)")
        for n in (1, 2, 3):
            t_ours = best_of(lambda ids=ids, n=n, vocab=vocab: ngram_counts(ids, n, vocab), args.repeat)[0]
            t_base = best_of(lambda ids=ids, n=n: counter_baseline(ids[:sub], n), args.repeat)[0] * scale
            keys, counts = ngram_counts(ids[:sub], n, vocab)
            base = counter_baseline(ids[:sub], n)
            ours = {
                tuple(k): int(c)
                for k, c in zip(decode_ngram_keys(keys, n, vocab).tolist(), counts.tolist(), strict=True)
            }
            same = ours == dict(base)
            print(
                f"  n={n}: ngram_counts {t_ours:.4f} s, Counter {t_base:.4f} s  → {t_base / t_ours:5.1f}× faster"
                f"  ({len(keys):,} distinct, same counts: {same})"
            )
        t_stats = best_of(lambda ids=ids, vocab=vocab: ngram_stats(ids, vocab, ns=(1, 2, 3)), args.repeat)[0]
        print(f"  ngram_stats n=1,2,3 (whole Dataset): {t_stats:.4f} s")


if __name__ == "__main__":
    main()
