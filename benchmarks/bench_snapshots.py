"""What snapshots cost: `toto-lens train` with `--snapshot-every` against the same command without.

Both sides are the whole command in its own process (start-up, tokenizer and pools read from the cache,
the steps, validation, checkpoints), on the default model (toto-tiny, 8 clips × 1026 tokens a step),
taking turns in rounds; each keeps its fastest and its median round. The snapshot side writes
`steps / every + 1` checkpoints (step 0 included). Printed: both times, the ratio, the seconds one
snapshot adds (the difference over the number written) beside the seconds of a training step, and the
size of one snapshot on disk. A first, untimed run fits the tokenizer and renders the pools.

Usage: python benchmarks/bench_snapshots.py [--steps 40] [--every 10] [--rounds 3] [--model toto-tiny]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXE = Path(sys.executable).with_name("toto-lens")


def run(cache: Path, name: str, args: list[str]) -> float:
    command = [str(EXE), "train", "--name", name, "--overwrite", *args]
    t0 = time.perf_counter()
    done = subprocess.run(
        command, env={**os.environ, "TOTO_LENS_CACHE": str(cache)}, capture_output=True, text=True
    )
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--every", type=int, default=10, help="--snapshot-every of the snapshot side")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default="toto-tiny")
    opts = parser.parse_args()
    base = ["--model", opts.model, "--steps", str(opts.steps), "--log-every", str(opts.steps)]
    sides = {"plain": base, "snapshots": [*base, "--snapshot-every", str(opts.every)]}
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        run(cache, "warm", [*base[:2], "--steps", "1"])  # tokenizer fit and pools, once, untimed
        times: dict[str, list[float]] = {side: [] for side in sides}
        for r in range(opts.rounds):
            for side in sides if r % 2 == 0 else reversed(list(sides)):
                times[side].append(run(cache, side, sides[side]))
                print(f"round {r + 1} {side}: {times[side][-1]:.2f} s", flush=True)
        folders = sorted((cache / "checkpoints").glob("snapshots-step*"))
        size = sum(f.stat().st_size for f in folders[-1].rglob("*") if f.is_file())
        shutil.rmtree(cache / "checkpoints", ignore_errors=True)
    written = opts.steps // opts.every + 1
    best = {side: min(t) for side, t in times.items()}
    median = {side: statistics.median(t) for side, t in times.items()}
    print(
        f"\n{opts.model}, {opts.steps} steps, a snapshot every {opts.every} ({written} written, {size / 1e6:.2f} MB each)"
    )
    print(f"{'':12}{'fastest s':>12}{'median s':>12}")
    for side in sides:
        print(f"{side:12}{best[side]:12.2f}{median[side]:12.2f}")
    print(
        f"snapshots / plain: fastest {best['snapshots'] / best['plain']:.3f}×, median {median['snapshots'] / median['plain']:.3f}×"
    )
    per = (median["snapshots"] - median["plain"]) / written
    step = median["plain"] / opts.steps  # an upper bound: the plain command's start-up is in it
    print(f"one snapshot ≈ {per:.3f} s (median difference / {written}); a step ≤ {step:.3f} s")


if __name__ == "__main__":
    main()
