"""Probing, redundancy and n-grams streamed from the store against eager in memory, side by side in one run.

Writes a synthetic store with the package's own writer (no model: tokens whose later frames often copy
the frame before, losses, float16 `acts_pooled` with a digit planted in every eighth layer; by default
6,400 clips of 4 frames of 16×16 tokens, 32 layers of 128 features: 52 MB of pooled features, 26 MB each
of tokens and losses), small enough to fit in memory. Each analysis then runs in a fresh subprocess, each
way in turn:

- eager: the variables the analysis reads loaded whole (`ds.acts_pooled.load()`), then the analysis with
  `block_bytes=2**40`, so every array is read and computed at once (how the analyses read a store
  before they streamed);
- streamed: the store opened lazily (dask) and the analysis with `block_bytes` of `--block` MiB, a layer
  group, a run of clip chunks or of positions at a time.

A subprocess reports the analysis's wall time (imports and torch's start-up excluded) and its peak
resident memory (`resource.getrusage` ru_maxrss) above the resident memory it had just before. Prints
both, and the ratios streamed / eager. The results of the two ways are checked equal (to 1e-12).

Usage: python benchmarks/bench_streaming.py [--clips 6400] [--layers 32] [--feature 128] [--block 16]
       [--repeat 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

CODES = 64
IN_MEMORY = 1 << 40

CHILD = textwrap.dedent(
    """
    import json, pickle, resource, sys, time
    import torch  # noqa: F401 - loaded before the clock starts, as probe_layers loads it
    from toto_lens.analysis.ngrams import cache_ngram_stats
    from toto_lens.analysis.probing import probe_layers
    from toto_lens.analysis.redundancy import redundancy
    from toto_lens.store import open_cache

    store, mode, analysis, block, out = sys.argv[1:6]
    needs = {"probing": ["acts_pooled"], "redundancy": ["tokens", "loss"], "ngrams": ["tokens"]}[analysis]
    run = {
        "probing": lambda ds, b: probe_layers(ds, ("digit", "motion"), seeds=(0, 1, 2), block_bytes=b),
        "redundancy": lambda ds, b: redundancy(ds, block_bytes=b),
        "ngrams": lambda ds, b: cache_ngram_stats(ds, (1, 2, 3), block_bytes=b),
    }[analysis]

    def rss():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) * 1024

    start = rss()
    t0 = time.perf_counter()
    ds = open_cache(path=store)
    if mode == "eager":
        for name in needs:
            ds[name].load()  # in place: the Dataset holds the loaded array from now on
    result = run(ds, 1 << 40 if mode == "eager" else int(block))
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with open(out, "wb") as f:
        pickle.dump(result, f)
    print(json.dumps({"seconds": seconds, "peak": peak - start, "start": start}))
    """
)


def write_store(path: Path, clips: int, layers: int, feature: int, frames: int = 4, grid: int = 16,
                batch: int = 400, seed: int = 0) -> Path:  # fmt: skip
    """A finished store written batch by batch with `toto_lens.store.writer`, as `extract` writes one."""
    from toto_lens.data.labels import LabelSpec
    from toto_lens.data.layout import Layout
    from toto_lens.store.schema import (
        ExtractRequest,
        Shape,
        data_variables,
        label_variables,
        static_coordinates,
        used_dims,
        with_kind,
    )
    from toto_lens.store.writer import (
        StoreLock,
        finish,
        now,
        open_or_create,
        schema_attrs,
        write_batch,
        write_coordinates,
    )

    layout = Layout(frames, grid, grid)
    request = ExtractRequest(layers=tuple(range(layers)), acts=("pooled",), dtype="float16", batch_size=batch)
    labels = with_kind(
        (LabelSpec("digit", (), "int64", tuple("0123")), LabelSpec("motion", (), "int64", ("a", "b", "c")))
    )
    shape = Shape(clip=clips, layers=request.layers, n_blocks=layers - 1, frames=frames, rows=grid, cols=grid,
                  feature=feature, head=1, image=(0, 0), labels=labels)  # fmt: skip
    specs = data_variables(request, clips, labels, masks=False) + label_variables(shape)
    config = {"vocab_size": CODES + 4, "pad_id": 0, "video_start_id": 1, "end_id": 2, "image_start_id": 3,
              "n_layers": layers - 1}  # fmt: skip
    attrs = schema_attrs(
        checkpoint={"name": "synthetic", "path": "none", "sha256": "0" * 64}, model_config=config,
        tokenizer={"kind": "none"}, dataset={"name": "synthetic-val", "source": "synthetic", "split": "val"},
        layout={"frames": frames, "rows": grid, "cols": grid, "length": layout.length},
        request=request.to_dict(), created=now(),
    )  # fmt: skip
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((4, feature)).astype(np.float32)
    with StoreLock(path):
        group, _ = open_or_create(path, attrs, specs, shape, batch, overwrite=True)
        positions = (layout.frame_of_position, layout.row_of_position, layout.col_of_position)
        write_coordinates(group, static_coordinates(shape, *positions, used_dims(specs)))
        group.attrs.update({"arrays_ready": True})
        for start in range(0, clips, batch):
            n = min(batch, clips - start)
            digit = rng.integers(0, 4, n)
            codes = rng.integers(0, CODES, (n, frames, grid, grid))
            copied = rng.random(codes.shape) < 0.6
            for f in range(1, frames):
                codes[:, f] = np.where(copied[:, f], codes[:, f - 1], codes[:, f])
            tokens = layout.pack(codes).astype(np.int32)
            loss = rng.exponential(2.0, tokens.shape).astype(np.float32)
            loss[:, 0] = np.nan
            acts = rng.standard_normal((n, layers, feature), dtype=np.float32)
            acts[:, 3::8] += 0.5 * means[digit][:, None]
            arrays = {
                "tokens": tokens, "loss": loss, "acts_pooled": acts.astype(np.float16),
                "kind": np.zeros(n, np.int8), "digit": digit, "motion": rng.integers(0, 3, n),
                "complete": np.ones(n, np.uint8),
            }  # fmt: skip
            for name, values in arrays.items():
                write_batch(group, name, start, values, request.layers)
        finish(group, path)
    return path


def measure(store: Path, mode: str, analysis: str, block: int, out: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(store), mode, analysis, str(block), str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode:
        raise SystemExit(f"{analysis} ({mode}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def same(a, b) -> bool:
    import xarray as xr

    try:
        xr.testing.assert_allclose(a, b, rtol=1e-12, atol=0)
    except AssertionError:
        return False
    return True


def main() -> None:
    import pickle

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=6400)
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--feature", type=int, default=128)
    parser.add_argument("--block", type=float, default=16, help="MiB a streamed step may hold")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each; the best time, the least memory")
    parser.add_argument(
        "--keep", type=Path, help="write the store here (and keep it) instead of a temp folder"
    )
    args = parser.parse_args()
    block = int(args.block * (1 << 20))
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        store = folder / "bench-streaming.zarr"
        t0 = time.perf_counter()
        write_store(store, args.clips, args.layers, args.feature)
        from toto_lens.store import open_cache

        ds = open_cache(path=store)
        sizes = ", ".join(f"{v} {ds[v].nbytes / 1e6:.0f} MB" for v in ("acts_pooled", "tokens", "loss"))
        print(f"store: {args.clips:,} clips, {args.layers} layers × {args.feature} features ({sizes}), "
              f"written in {time.perf_counter() - t0:.1f} s; streamed blocks of {args.block:g} MiB; "
              f"best of {args.repeat} fresh processes each")  # fmt: skip
        print(f"{'analysis':<11} {'eager s':>8} {'streamed s':>11} {'time ×':>7} {'eager MB':>9} "
              f"{'streamed MB':>12} {'memory ×':>9}  same result")  # fmt: skip
        for analysis in ("probing", "redundancy", "ngrams"):
            row, results = {}, {}
            for mode in ("eager", "streamed"):
                out = folder / f"{analysis}-{mode}.pkl"
                runs = [measure(store, mode, analysis, block, out) for _ in range(max(1, args.repeat))]
                row[mode] = (min(r["seconds"] for r in runs), min(r["peak"] for r in runs) / 1e6)
                with open(out, "rb") as f:
                    results[mode] = pickle.load(f)
            (te, me), (ts, ms) = row["eager"], row["streamed"]
            print(f"{analysis:<11} {te:8.2f} {ts:11.2f} {ts / te:7.2f} {me:9.0f} {ms:12.0f} {ms / me:9.2f}  "
                  f"{same(results['eager'], results['streamed'])}")  # fmt: skip
        print("peak MB: the peak resident memory above the process's own before the analysis (imports done)")


if __name__ == "__main__":
    main()
