"""The appendix report's own cost: what `toto-lens figures` adds over the studies it runs.

Builds the `smoke` family's report once in a fresh cache (timed: the empty-cache run), then, process
against process, alternating in rounds and keeping each side's fastest:
  1. rerun      `toto-lens figures --family smoke` with every step unchanged (reads the records, rewrites the
                page and nothing else), against `toto-lens checkpoints` (a bare command: start-up and
                imports). The gap is the price of checking every step and writing the page.
  2. only fig10 `toto-lens figures --only fig10 --no-png` (the family's steps checked, Fig. 10 recomputed),
                against the same studies as plain commands: `toto-lens redundancy` on each size's trained,
                untrained and image caches, one process each, as a user would type them.
Usage: python benchmarks/bench_report.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent / "toto-lens"


def run(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        [str(BIN), *args], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "TOTO_LENS_CACHE": f"{tmp}/cache"}
        out = f"{tmp}/report"
        first = run(["figures", "--family", "smoke", "--out", out], env)
        print(f"smoke report from an empty cache: {first:.0f} s")
        sizes = ("base", "large", "1b")
        plain = [["redundancy", "--ckpt", f"report-smoke-{s}{u}", "--dataset", d, "--out", f"{tmp}/r-{s}{u}-{d}.html"]
                 for s in sizes for u, d in (("", "moving-digits-val"), ("-untrained", "moving-digits-val"),
                                             ("", "image-digits-val"))]  # fmt: skip
        sides = {
            "rerun": lambda: run(["figures", "--family", "smoke", "--out", out], env),
            "bare command": lambda: run(["checkpoints"], env),
            "only fig10": lambda: run(["figures", "--family", "smoke", "--out", out, "--only", "fig10", "--no-png"], env),
            "9 redundancy commands": lambda: sum(run(a, env) for a in plain),
        }  # fmt: skip
        best = {k: float("inf") for k in sides}
        for _ in range(args.rounds):
            for name, fn in sides.items():
                best[name] = min(best[name], fn())
        for name, seconds in best.items():
            print(f"{name:>22}: {seconds:6.1f} s")
        print(f"rerun / bare command:                 {best['rerun'] / best['bare command']:.2f}×")
        print(
            f"only fig10 / 9 redundancy commands:   {best['only fig10'] / best['9 redundancy commands']:.2f}×"
        )


if __name__ == "__main__":
    main()
