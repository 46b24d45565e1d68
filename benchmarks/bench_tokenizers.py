"""Tokenizer encoding speed against plain baselines, side by side in one run; prints ratios.

Frames: 10,000 frames of the bundled val split (32×32, 8×8 patches of 4×4 → 640,000 patches).

1. PatchKMeans-512: ours (chunked torch matmul) vs the naive way, one dense numpy distance matrix
   ‖x‖² − 2x·c + ‖c‖² over all patches and an argmin; also `nearest_centroid` alone, without patchify.
2. RandomCodebook at 512 and 32,768 codes: ours (k-d tree in the 4-d latent) vs brute force
   in numpy on a subset of patches, scaled to all of them (a dense 640k × 32k matrix would be 84 GB).

Every baseline's ids are compared with ours (fraction equal) so that speed is not bought with errors.

Usage: python benchmarks/bench_tokenizers.py [--frames 10000] [--repeat 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _timing import best_of

from toto_lens.tokenizers import PatchKMeans, RandomCodebook, bundled_frames, patchify
from toto_lens.tokenizers.kmeans import nearest_centroid


def digit_frames(n: int, split: str) -> np.ndarray:
    """n frames of the bundled data: four fifths moving-digits videos, one fifth image sequences."""
    clips = -(-n // 16)
    return bundled_frames(split, video_clips=clips - clips // 5, image_clips=clips // 5)[:n]


def dense_argmin(x: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """The naive nearest neighbour: the whole [M, V] distance matrix in numpy, then argmin."""
    d = x @ codes.T  # (M, V), filled in place below to hold one matrix, not four
    d *= -2
    d += (codes * codes).sum(1)[None]
    d += (x * x).sum(1)[:, None]
    return d.argmin(1)


def line(label: str, seconds: float, frames: int) -> None:
    print(f"  {label:<44} {seconds:8.3f} s  {frames / seconds:>12,.0f} frames/s")


def bench_kmeans(train: np.ndarray, frames: np.ndarray, repeat: int) -> None:
    t0 = time.perf_counter()
    tok = PatchKMeans.fit(train, vocab_size=512, seed=0)
    info = tok.fit_info
    print(
        f"kmeans-512: fit on {len(train):,} frames ({info['fit_distinct_patches']:,} distinct of "
        f"{info['fit_patches']:,} patches) in {time.perf_counter() - t0:.2f} s"
    )
    n = len(frames)
    patches = np.ascontiguousarray(patchify(frames, 4).reshape(-1, 16))  # (M, 16)
    t_ours, ids = best_of(lambda: tok.encode(frames), repeat)
    t_chunk, ids_chunk = best_of(lambda: nearest_centroid(patches, tok.centroids), repeat)
    t_dense, ids_dense = best_of(lambda: dense_argmin(patches, tok.centroids), max(1, repeat - 2))
    line("ours: encode()", t_ours, n)
    line("ours: nearest_centroid on patches alone", t_chunk, n)
    line("naive: dense numpy matrix + argmin", t_dense, n)
    agree = np.mean(ids.reshape(-1) == ids_dense)
    print(
        f"  → encode() is {t_dense / t_ours:.1f}× faster than naive ({t_dense / t_chunk:.1f}× for the search alone); "
        f"ids equal to naive: {agree:.4%}, chunked vs encode(): "
        f"{np.mean(ids_chunk == ids.reshape(-1)):.4%}"
    )


def bench_random(train: np.ndarray, frames: np.ndarray, repeat: int, subset: int) -> None:
    base = RandomCodebook.fit(train, vocab_size=512, seed=0)
    n = len(frames)
    patches = np.ascontiguousarray(patchify(frames, 4).reshape(-1, 16))  # (M, 16)
    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(len(patches), min(subset, len(patches)), replace=False))
    for vocab in (512, 32768):
        tok = base.with_vocab(vocab)
        t_ours, ids = best_of(lambda tok=tok: tok.encode(frames), repeat)
        z = tok.latents(patches[pick])
        t_sub, ids_brute = best_of(lambda tok=tok, z=z: dense_argmin(z, tok.codebook), max(1, repeat - 2))
        t_brute = t_sub * len(patches) / len(pick)
        print(f"random-codebook-{vocab}: with_vocab({vocab}), no refit")
        line("ours: encode() (k-d tree)", t_ours, n)
        line(f"naive: brute force on {len(pick):,} patches, scaled", t_brute, n)
        agree = np.mean(ids.reshape(-1)[pick] == ids_brute)
        print(f"  → encode() is {t_brute / t_ours:.1f}× faster than brute force; ids equal: {agree:.4%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--train", type=int, default=2_000, help="frames to fit on")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--subset", type=int, default=20_000, help="patches for the brute-force baselines")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}, frames: {args.frames:,} of 32×32 (8×8 patches each)")
    train = digit_frames(args.train, "train")
    frames = digit_frames(args.frames, "val")
    bench_kmeans(train, frames, args.repeat)
    bench_random(train, frames, args.repeat, args.subset)


if __name__ == "__main__":
    main()
