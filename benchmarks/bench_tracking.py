"""Tracking: the whole `toto-lens track` command against reading its inputs, and where its time goes.

1. Process against process, each run in its own Python (start-up, imports, work, writing), alternating in
   rounds and keeping each side's fastest:
     track   `toto-lens track --ckpt CKPT --clips N --out …` (every layer, pixels, copy-first, token-oracle)
     floor   a process that opens the same cache and reads what the study must read: every layer's
             acts_token and the masks of the same clips (no propagation, no scoring, no figure)
   The ratio track / floor is the price of the analysis over the reading any tracker pays.
2. In one process, one layer on the same clips: reading its features, propagating the labels over tokens,
   upsampling to pixels, scoring J and F; each as a share of the layer's time.

Needs a cache with per-token activations (`make demo` writes cache/demo/moving-digits-val.zarr).
Usage: python benchmarks/bench_tracking.py [--ckpt demo] [--clips 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _timing import best_of

FLOOR = """
import sys
import numpy as np
from toto_lens import open_cache
from toto_lens.analysis.token_cache import grid_of
ds = open_cache(sys.argv[1])
f, _, _ = grid_of(ds)
visual = np.flatnonzero(f >= 0)
masks = ds["masks"].isel(clip=slice(0, int(sys.argv[2]))).values
for layer in ds["layer"].values:
    x = ds["acts_token"].sel(layer=layer).isel(clip=slice(0, int(sys.argv[2])), position=visual).values
"""


def process(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - start


def stages(ckpt: str, clips: int, repeat: int) -> dict[str, float]:
    """Seconds of each stage of tracking one layer (the middle one) on `clips` clips."""
    from toto_lens import open_cache
    from toto_lens.analysis.davis import score_objects
    from toto_lens.analysis.token_cache import grid_of
    from toto_lens.analysis.tracking import first_objects, propagate, to_pixels, token_labels

    ds = open_cache(ckpt)
    f, r, c = grid_of(ds)
    visual = np.flatnonzero(f >= 0)
    grid, frames = (int(r.max()) + 1, int(c.max()) + 1), int(f.max()) + 1
    layer = int(ds["layer"].values[len(ds["layer"]) // 2])
    masks = ds["masks"].isel(clip=slice(0, clips)).values

    def read():
        x = ds["acts_token"].sel(layer=layer).isel(clip=slice(0, clips), position=visual).values
        return np.asarray(x, dtype=np.float32).reshape(clips, frames, *grid, -1)

    t_read, feats = best_of(read, repeat)
    objects = [first_objects(m) for m in masks]
    firsts = [token_labels(m[0], o, grid) for m, o in zip(masks, objects, strict=True)]
    t_prop, soft = best_of(lambda: [propagate(x, s) for x, s in zip(feats, firsts, strict=True)], repeat)
    t_up, preds = best_of(
        lambda: [to_pixels(s, m.shape[1:], o) for s, m, o in zip(soft, masks, objects, strict=True)], repeat
    )
    t_score, _ = best_of(
        lambda: [score_objects(p, m, o) for p, m, o in zip(preds, masks, objects, strict=True)], repeat
    )
    return {"read": t_read, "propagate": t_prop, "upsample": t_up, "score J and F": t_score}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", default="demo")
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        track = [sys.executable, "-c", "from toto_lens.cli import main; main()", "track", "--ckpt", args.ckpt, "--clips", str(args.clips),
                 "--out", str(Path(tmp) / "track.nc")]  # fmt: skip
        floor = [sys.executable, "-c", FLOOR, args.ckpt, str(args.clips)]
        best = {"track": float("inf"), "floor": float("inf")}
        for _ in range(args.rounds):
            best["track"] = min(best["track"], process(track))
            best["floor"] = min(best["floor"], process(floor))
    print(f"whole command, {args.clips} clips of {args.ckpt}, best of {args.rounds} rounds:")
    print(f"  toto-lens track  {best['track']:7.2f} s")
    print(f"  reading floor    {best['floor']:7.2f} s")
    print(f"  ratio track / floor: {best['track'] / best['floor']:.2f}×")
    times = stages(args.ckpt, args.clips, repeat=2)
    total = sum(times.values())
    print(f"one layer, {args.clips} clips ({total:.2f} s):")
    for name, seconds in times.items():
        print(f"  {name:15s} {seconds:6.3f} s  {seconds / total:5.1%}")


if __name__ == "__main__":
    main()
