"""What a command pays before and between its batches: loading a checkpoint and drawing the bundled clips.

Side by side in one run, each against the way it was done before:

  load           a process that loads a checkpoint (`load_checkpoint`: the model built by `Toto.empty`,
                 no initialiser run, the weights assigned), from start to exit
  load-init      the same with the model built under `torch.device("meta")` with its initialisers run
                 (the way before: on meta tensors torch's init functions import its compiler)
  import-torch   a process that imports torch and toto_lens.checkpoints and loads nothing: the floor
  draw-clip      `MovingDigits[i]`: every frame of each digit drawn in one pass (`draw_digit` with
                 per-frame centre, scale and angle), 256 clips
  draw-frames    the same clips drawn a frame at a time, as before, with today's sampler (the same
                 pixels: checked); the sampler's own change (one `take` per corner) is not in this ratio

Processes run in interleaved rounds and each keeps its fastest; printed: seconds and the ratios.

Usage: python benchmarks/bench_load.py [--model toto-tiny] [--rounds 3] [--clips 256]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOTO_LENS = Path(sys.executable).with_name("toto-lens")
LOAD = "from toto_lens.checkpoints import load_checkpoint; load_checkpoint('bench')"
LOAD_INIT = """
import torch
from toto_lens.checkpoints import load_checkpoint
from toto_lens.model import Toto

def built_on_meta(config):  # the way before Toto.empty: initialisers run on meta tensors
    with torch.device("meta"):
        return Toto(config)

Toto.empty = staticmethod(built_on_meta)
load_checkpoint("bench")
"""
FLOOR = "import torch; import toto_lens.checkpoints"


def draw_by_frame(src, index):
    """`MovingDigits.__getitem__`'s frames drawn a frame at a time (the way before), same numbers."""
    import numpy as np

    from toto_lens.data.moving import _trajectory, clip_rng
    from toto_lens.data.render import composite, draw_digit, texture

    cfg = src.config
    rng = clip_rng(src.seed, src.split, index)
    motion = cfg.motions[int(rng.integers(len(cfg.motions)))]
    picks = rng.integers(len(src._labels), size=cfg.n_digits)
    paths = [_trajectory(motion, cfg, rng) for _ in range(cfg.n_digits)]
    background = texture(cfg.canvas, cfg.background, clip_rng(src.seed, src.split, index, stream=2))
    frames = []
    for f in range(cfg.frames):
        layers = [draw_digit(src._images[p], cfg.canvas, tr["centre"][f], tr["scale"][f], tr["angle"][f])
                  for p, tr in zip(picks, paths, strict=True)]  # fmt: skip
        frames.append(composite(layers, background)[0])
    return np.stack(frames)


def timed(argv: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="toto-tiny")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--clips", type=int, default=256)
    a = p.parse_args()

    import numpy as np

    from toto_lens.data import MovingDigits

    src = MovingDigits("val", a.clips)
    for i in range(0, a.clips, max(1, a.clips // 8)):
        assert np.array_equal(src[i].frames, draw_by_frame(src, i)), f"clip {i}: the two ways differ"
    jobs = {
        "load": lambda env: timed([sys.executable, "-c", LOAD], env),
        "load-init": lambda env: timed([sys.executable, "-c", LOAD_INIT], env),
        "import-torch": lambda env: timed([sys.executable, "-c", FLOOR], env),
        "draw-clip": lambda env: _draw(lambda i: src[i].frames, a.clips),
        "draw-frames": lambda env: _draw(lambda i: draw_by_frame(src, i), a.clips),
    }
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "TOTO_LENS_CACHE": str(Path(tmp) / "cache")}
        init = [str(TOTO_LENS), "init", "--model", a.model, "--name", "bench", "--seed", "0"]
        subprocess.run(init, env=env, check=True, capture_output=True)
        best: dict[str, float] = {}
        for i in range(a.rounds):
            for name, job in jobs.items():
                seconds = job(env)
                print(f"  round {i + 1} {name:<14}{seconds:>8.2f} s", flush=True)
                best[name] = min(best.get(name, seconds), seconds)
    print(
        f"{a.model}: load {best['load']:.2f} s, load-init {best['load-init']:.2f} s "
        f"({best['load'] / best['load-init']:.2f}×); a process that only imports {best['import-torch']:.2f} s"
    )
    print(f"{a.clips} moving-digits clips: drawn a clip at a time {best['draw-clip']:.2f} s, a frame at a time "
          f"{best['draw-frames']:.2f} s ({best['draw-clip'] / best['draw-frames']:.2f}×)")  # fmt: skip


def _draw(get, clips: int) -> float:
    t0 = time.perf_counter()
    for i in range(clips):
        get(i)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
