"""The user's sources against their floors: is the loader ever what extraction waits for?

Side by side in one run, on files written beforehand into a temporary folder (synthetic videos of
`--frames-in` frames at 160×120, mp4/H.264 through PyAV; PNGs of the same size in class folders):

  decode       PyAV alone: open each video, decode up to the last frame the sampling needs, convert the
               sampled frames to RGB arrays (nothing else: the floor of any video loader)
  video-folder `open_source("video-folder:…")` (probe at open included) and every clip read: decode,
               resize, centre-crop, labels
  png-decode   PIL alone: open and decode the PNGs of each clip
  image-folder `open_source("image-folder:…")` and every clip read
  shards       `tokens:` shards of the same number of clips read back (memory-mapped codes)
  forward      the model's side of extraction: a bare forward of toto-debug and toto-tiny (random weights,
               `inference_mode`) over batches of the clips' token sequences, for scale

Printed: clips/s of each and the ratios video-folder / decode and image-folder / png-decode (the
loader's overhead over decoding), and loader clips/s against forward clips/s (above 1: the loader,
run in extraction's prefetch thread, keeps up with the model). Every job is timed best of --repeat
after one warm-up.

Usage: python benchmarks/bench_sources.py [--videos 32] [--frames 16] [--stride 4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _timing import best_of  # noqa: E402


def write_files(root: Path, videos: int, frames_in: int) -> None:
    import imageio.v3 as iio
    from PIL import Image

    rng = np.random.default_rng(0)
    for k in range(videos):
        cls = ("a", "b")[k % 2]
        (root / "videos" / cls).mkdir(parents=True, exist_ok=True)
        (root / "images" / cls).mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 255, size=(120, 160, 3), dtype=np.uint8)
        clip = np.stack([np.roll(base, 3 * t, axis=1) for t in range(frames_in)])
        iio.imwrite(root / "videos" / cls / f"{k}.mp4", clip, fps=25, codec="libx264", plugin="pyav")
        for t in range(0, frames_in, 4):
            Image.fromarray(clip[t]).save(root / "images" / cls / f"{k}-{t}.png")


def decode_only(files: list[Path], indices: list[int]) -> int:
    import av

    wanted, last = set(indices), indices[-1]
    for path in files:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            kept = []
            for i, frame in enumerate(container.decode(stream)):
                if i in wanted:
                    kept.append(frame.to_ndarray(format="rgb24"))
                if i >= last:
                    break
            assert len(kept) == len(indices), f"{path} is too short"
    return len(files)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--videos", type=int, default=32)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--stride", type=int, default=4)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    import torch
    from PIL import Image

    from toto_lens.config import ModelConfig
    from toto_lens.data import Layout, open_source
    from toto_lens.data.sources.tokens import write_token_shards
    from toto_lens.model import Toto
    from toto_lens.tokenizers.random_codebook import RandomCodebook

    frames_in = args.frames * args.stride + 4
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_files(root, args.videos, frames_in)
        video = f"video-folder:{root / 'videos'}?frames={args.frames}&stride={args.stride}&mode=grey"
        image = f"image-folder:{root / 'images'}?frames={args.frames}&mode=grey"
        indices = [k * args.stride for k in range(args.frames)]
        files = sorted((root / "videos").rglob("*.mp4"))
        n = args.videos

        def read_all(name: str, split: str, count: int) -> int:
            src = open_source(name, split=split, n_clips=count)
            return sum(src[i].num_frames for i in range(len(src))) // args.frames

        pngs = sorted((root / "images").rglob("*.png"))
        groups = [pngs[(i * args.frames) % len(pngs) :][: args.frames] for i in range(n)]

        def png_decode() -> int:
            for group in groups:
                for path in group:
                    with Image.open(path) as im:
                        np.asarray(im.convert("L"))
            return n

        sample = open_source(video, split="train", n_clips=n)
        tok = RandomCodebook.fit(np.stack([sample[0].frames]), vocab_size=512, patch=4, seed=0)
        write_token_shards(sample, tok, root / "shards")
        results = {
            "decode": best_of(lambda: decode_only(files, indices), args.repeat),
            "video-folder": best_of(lambda: read_all(video, "train", n), args.repeat),
            "png-decode": best_of(png_decode, args.repeat),
            "image-folder": best_of(lambda: read_all(image, "train", n), args.repeat),
            "shards": best_of(lambda: read_all(f"tokens:{root / 'shards'}", "train", n), args.repeat),
        }
        clips = {"decode": len(files), "video-folder": len(sample), "png-decode": n, "image-folder": n,
                 "shards": len(sample)}  # fmt: skip
        layout = Layout(args.frames, *tok.grid)
        tokens = torch.as_tensor(layout.encode_clips([sample[i] for i in range(min(16, len(sample)))], tok))
        for variant in ("toto-debug", "toto-tiny"):
            config = ModelConfig.from_name(variant)
            model = Toto(config.replace(vocab_size=max(config.vocab_size, 512 + 4))).eval()
            with torch.inference_mode():
                results[f"forward {variant}"] = best_of(lambda m=model: m(tokens), args.repeat)
            clips[f"forward {variant}"] = len(tokens)
    rate = {k: clips[k] / t for k, (t, _) in results.items()}
    print(
        f"{n} videos of {frames_in} frames at 160×120 → {args.frames} frames every {args.stride}, 32×32 grey"
    )
    for k, r in rate.items():
        print(f"  {k:<22} {r:8.1f} clips/s")
    print(f"video-folder / decode        {rate['decode'] / rate['video-folder']:.2f}× the time")
    print(f"image-folder / png-decode    {rate['png-decode'] / rate['image-folder']:.2f}× the time")
    for variant in ("toto-debug", "toto-tiny"):
        f = rate[f"forward {variant}"]
        print(
            f"video-folder / forward {variant:<10} {rate['video-folder'] / f:.2f}× the clips/s (>1: keeps up)"
        )


if __name__ == "__main__":
    main()
