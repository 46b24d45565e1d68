"""What the user waits for: whole `toto-lens` commands of this tree against those of another revision.

Each command runs as its own process (the time a person waits: start-up, imports, work, writing), once
with this working tree's toto_lens and once with a baseline revision's (checked out into a temporary git
worktree and put first on PYTHONPATH; the same venv and libraries for both). The two sides alternate in
interleaved rounds and each keeps its fastest round, so load from other processes touches both alike.
Each side has its own cache folder (its checkpoints and stores), sharing only the fitted tokenizers.

Commands, on an untrained toto-tiny checkpoint with the kmeans-64 tokenizer:
  help        toto-lens --help (start-up)
  extract     64 validation clips: pooled and per-frame activations, frame-to-frame attention
  probe       linear probe of the motion class, 2 seeds, every layer
  redundancy  loss per frame beside copy, unigram and bigram
  induction   head scores on random tokens and the cache's clips

Usage: python benchmarks/bench_commands.py --baseline d4de667 [--rounds 3] [--only probe,induction]
Prints each command's best time on both sides and the ratio this / baseline (< 1 is faster).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "help": ["--help"],
    "extract": ["extract", "--ckpt", "bench", "--data", "moving-digits", "--clips", "64", "--batch-size", "16",
                "--attn", "frame", "--overwrite"],
    "probe": ["probe", "--ckpt", "bench", "--task", "motion", "--seeds", "2", "--out", "{out}/probe.nc"],
    "redundancy": ["redundancy", "--ckpt", "bench", "--out", "{out}/redundancy.html"],
    "induction": ["induction", "--ckpt", "bench", "--n", "32", "--out", "{out}/induction.html"],
}  # fmt: skip


def run(code: Path, cache: Path, args: list[str], out: Path) -> float:
    """Seconds one `toto-lens ARGS` process takes with the toto_lens of `code`; fails loudly."""
    env = {**os.environ, "PYTHONPATH": str(code), "TOTO_LENS_CACHE": str(cache)}
    argv = [
        sys.executable,
        "-c",
        "from toto_lens.cli import main; main()",
        *(a.format(out=out) for a in args),
    ]
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed with {code}:\n{done.stderr[-2000:]}")
    return seconds


def prepare(code: Path, cache: Path, tokenizers: Path) -> None:
    (cache / "tokenizers").symlink_to(tokenizers)
    init = ["init", "--model", "toto-tiny", "--name", "bench", "--seed", "0"]
    run(code, cache, init, cache)
    tokenize = [
        "extract",
        "--ckpt",
        "bench",
        "--data",
        "moving-digits",
        "--clips",
        "16",
        "--tokenizer",
        "kmeans-64",
    ]
    run(code, cache, [*tokenize, "--dry-run"], cache)  # fits kmeans-64 once, into the shared folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="git revision to compare against")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated commands to time (extract always runs)")
    args = parser.parse_args()
    if args.only:  # the analyses read the store extract writes, so it stays
        keep = {"extract", *args.only.split(",")}
        for command in [c for c in COMMANDS if c not in keep]:
            del COMMANDS[command]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = tmp / "code-baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), args.baseline],
                       check=True, capture_output=True)  # fmt: skip
        try:
            sides = {"this": ROOT, "baseline": base}
            (tmp / "tokenizers").mkdir()
            caches = {name: tmp / f"cache-{name}" for name in sides}
            for name, code in sides.items():
                caches[name].mkdir()
                prepare(code, caches[name], tmp / "tokenizers")
            # the checkpoint records no tokenizer: both sides extract with --tokenizer
            COMMANDS["extract"] += ["--tokenizer", "kmeans-64"]
            best: dict[tuple[str, str], float] = {}
            for _ in range(args.rounds):
                for command, argv in COMMANDS.items():
                    for name, code in sides.items():
                        seconds = run(code, caches[name], argv, caches[name])
                        best[name, command] = min(best.get((name, command), float("inf")), seconds)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=False)
            shutil.rmtree(base, ignore_errors=True)
    print(f"whole commands, best of {args.rounds} interleaved rounds (this tree vs {args.baseline})")
    print(f"{'command':<12}{'this (s)':>10}{'baseline (s)':>14}{'ratio':>8}")
    for command in COMMANDS:
        this, baseline = best["this", command], best["baseline", command]
        print(f"{command:<12}{this:>10.2f}{baseline:>14.2f}{this / baseline:>8.2f}")


if __name__ == "__main__":
    main()
