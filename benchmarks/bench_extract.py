"""Extraction cost: the extractor's batch loop against a plain forward pass, its memory against the clip count,
and against TransformerLens-style caching (the whole command, process against process:
`bench_extract_process.py`).

Every measurement runs in a child process of its own, so that each peak resident memory (ru_maxrss, read
with os.wait4) belongs to one job alone. The jobs, on the same randomly initialised checkpoint (a
`--model` variant with the kmeans-512 tokenizer of the cache) and the same validation clips:

  plain        `torch.no_grad()` forward over token batches tokenized beforehand (no rendering)
  plain+data   the same, with each batch's clips rendered and tokenized in the loop, as extraction does
  extract      `toto_lens.run.extractor`, its batch loop (`ExtractResult.seconds`): pooled and per-frame activations of every layer and the per-token
               loss, rendered, tokenized, reduced in hooks and written to a zarr store
  tl-style     TransformerLens's way: `capture` without a callback keeps every layer's full residual
               stream (as `run_with_cache` does), the caches of all batches are held, then reduced to the
               same pooled / per-frame means and written
  attn-frame   extract with `--attn frame` as well: fused attention kept, each block's scores recomputed
               from its queries and keys and reduced to frame-to-frame mass a few query frames at a time
  attn-eager   the same numbers the other way: every block on the eager path, its (B, H, T, T) pattern
               reduced (what `--attn frame,pattern --pattern-clips 0` does; the only way before)

The jobs run in interleaved rounds (`--rounds`) and each keeps its fastest round, so that load from
other processes, which only ever adds time, touches every job alike. Printed: the time of each job and the ratios extract / plain+data (the like-for-like one) and
extract / plain; the peak memory of extract at N and 10·N clips and its ratio; tl-style against extract
in time and in peak memory; the two ways to `--attn frame` against each other and against no attention.

With `--integrity` it measures instead what chunk integrity costs (cache schema 2), side by side in
one run: `extract` as it is (crc32c after Zstd on every chunk, fill-only chunks written, the manifest
with its checksum digest at finish) against `extract-nocheck`, the same code with those three switched
off (Zstd alone, zarr's default of skipping fill-only chunks, no manifest), both with per-token
activations so that I/O weighs as much as it can; then opening the store (`open_cache`: the manifest
checked by a listing) against `xarray.open_zarr`, and reading every variable through the checking store
against plain zarr.

With `--loss` it times the per-token loss three ways on logits of toto-tiny's size (batch `--batch`):
`next_token_loss` (cross-entropy over the logits as they lie), the same after slicing off the last
position (a copy into rows) and log-sum-exp less the target's logit, at one thread and at all cores.

Usage: python benchmarks/bench_extract.py [--model toto-small] [--clips 16] [--batch 8] [--rounds 2]
       python benchmarks/bench_extract.py --loss --batch 16
       python benchmarks/bench_extract.py --integrity [--model toto-small] [--clips 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
TOTO_LENS = Path(sys.executable).with_name("toto-lens")


def make_checkpoint(folder: Path, model: str) -> Path:
    import torch

    from toto_lens.checkpoints import save_checkpoint
    from toto_lens.config import NUM_SPECIAL, ModelConfig
    from toto_lens.model import Toto
    from toto_lens.tokenizers import load_tokenizer

    tok = load_tokenizer("kmeans-512")
    config = ModelConfig.from_name(model).replace(vocab_size=tok.vocab_size + NUM_SPECIAL)
    torch.manual_seed(0)
    state = {k: torch.as_tensor(v) for k, v in tok.state_dict().items()}
    return save_checkpoint(
        Toto(config), folder / model, tokenizer=tok.spec, tokenizer_state=state,
        training={"config": {"data": "moving-digits", "data_seed": 0}}, overwrite=True,
    )  # fmt: skip


def child(mode: str, ckpt: str, clips: int, batch: int, out: str) -> dict:
    import numpy as np
    import torch

    from toto_lens import load_checkpoint
    from toto_lens.data import Layout, open_source
    from toto_lens.run import extract
    from toto_lens.tokenizers import tokenizer_from_spec

    if mode in ("extract-checked", "extract-nocheck"):
        if mode == "extract-nocheck":
            without_integrity()
        t0 = time.perf_counter()
        r = extract(ckpt, clips=clips, batch_size=batch, out=out, acts=("pooled", "frame", "token"),
                    overwrite=True)  # fmt: skip
        return {"seconds": r.seconds, "total": time.perf_counter() - t0, "bytes": r.bytes}
    if mode in ("extract", "attn-frame", "attn-eager"):
        attn = {"extract": (), "attn-frame": ("frame",), "attn-eager": ("frame", "pattern")}[mode]
        t0 = time.perf_counter()
        r = extract(
            ckpt, clips=clips, batch_size=batch, out=out, acts=("pooled", "frame"), attn=attn, pattern_clips=0,
            overwrite=True,
        )  # fmt: skip
        # the batch loop, as the other jobs time theirs; loading and creating the store is fixed cost
        return {"seconds": r.seconds, "setup": time.perf_counter() - t0 - r.seconds}
    ck = load_checkpoint(ckpt)
    tok = tokenizer_from_spec(ck.tokenizer, ck.tokenizer_state)
    source = open_source("moving-digits", split="val", n_clips=clips, seed=0)
    layout = Layout(source[0].num_frames, *tok.grid)

    def tokens(start):
        return torch.as_tensor(
            layout.encode_clips([source[i] for i in range(start, min(start + batch, clips))], tok)
        )

    starts = range(0, clips, batch)
    if mode == "plain":
        ready = [tokens(s) for s in starts]
        t0 = time.perf_counter()
        with torch.no_grad():
            for x in ready:
                ck.model(x)
        return {"seconds": time.perf_counter() - t0}
    t0 = time.perf_counter()
    if mode == "plain+data":
        with torch.no_grad():
            for s in starts:
                ck.model(tokens(s))
        return {"seconds": time.perf_counter() - t0}
    assert mode == "tl-style"
    import torch.nn.functional as F
    import zarr

    from toto_lens.run import capture

    names = ["hook_embed"] + [f"blocks.{i}.hook_resid_post" for i in range(ck.config.n_layers)]
    held, losses = [], []
    with torch.no_grad():
        for s in starts:
            x = tokens(s)
            with capture(ck.model, names) as cache:
                logits = ck.model(x)
            held.append(torch.stack([cache[n] for n in names], 1))  # (B, L+1, T, D) kept for all clips
            losses.append(F.cross_entropy(logits[:, :-1].transpose(1, 2), x[:, 1:], reduction="none"))
    resid = torch.cat(held)  # (N, L+1, T, D)
    frames = resid[:, :, 1:-1].reshape(*resid.shape[:2], layout.frames, -1, resid.shape[-1]).mean(3)
    g = zarr.create_group(out, overwrite=True)
    g.create_array("acts_frame", data=frames.half().numpy())
    g.create_array("acts_pooled", data=frames.mean(2).half().numpy())
    g.create_array("loss", data=np.asarray(torch.cat(losses).numpy()))
    return {"seconds": time.perf_counter() - t0, "held_gb": resid.numel() * 4 / 1e9}


def without_integrity() -> None:
    """The extractor as it was before chunk integrity: Zstd alone, fill-only chunks skipped, no manifest."""
    from zarr.codecs import ZstdCodec

    import toto_lens.run.extractor as extractor
    import toto_lens.store.integrity as integrity
    import toto_lens.store.writer as writer

    def plain(path, read_only=True):  # zarr's own store: no checksum checked on read
        from zarr.storage import LocalStore

        return LocalStore(str(path), read_only=read_only)

    integrity.checked_store = extractor.checked_store = plain
    writer.compressors = lambda: [ZstdCodec(level=0)]
    writer.WRITE_CONFIG.clear()  # zarr's default: write_empty_chunks=False

    def finish(group, path):
        group.attrs.update({"complete": True, "finished": writer.now()})

    extractor.finish = finish


def best_of(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def integrity(a) -> None:
    import xarray as xr

    from toto_lens import open_cache
    from toto_lens.store.integrity import store_attrs
    from toto_lens.store.reader import check_manifest

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = make_checkpoint(tmp, a.model)
        print(
            f"{a.model}, {a.clips} clips, batch {a.batch}, acts pooled,frame,token, threads {os.cpu_count()}"
        )
        r: dict[str, dict] = {}
        for _ in range(a.rounds):
            for m in ("extract-checked", "extract-nocheck"):
                new = run(m, ckpt, a.clips, a.batch, tmp / f"{m}.zarr")
                if m not in r or new["seconds"] < r[m]["seconds"]:
                    r[m] = new
        checked, plain = tmp / "extract-checked.zarr", tmp / "extract-nocheck.zarr"

        def before(path):  # what open_cache did without integrity: open, load the small coordinates
            ds = xr.open_zarr(path, consolidated=False)
            return ds.assign_coords({k: ds[k].load() for k in ds.coords if k not in ds.indexes})

        opened, read = {"checked": [], "plain": []}, {"checked": [], "plain": []}
        for _ in range(5):  # interleaved, best of each
            opened["checked"].append(best_of(lambda: open_cache(path=checked), 1))
            opened["plain"].append(best_of(lambda: before(plain), 1))
            read["checked"].append(best_of(lambda: open_cache(path=checked).load(), 1))
            read["plain"].append(best_of(lambda: before(plain).load(), 1))
        manifest = best_of(lambda: check_manifest(checked, store_attrs(checked)), 20)
        opened = {k: min(v) for k, v in opened.items()}
        read = {k: min(v) for k, v in read.items()}
    a_, b_ = r["extract-checked"], r["extract-nocheck"]
    print(f"{'job':<18}{'loop s':>8}{'total s':>9}{'store MB':>10}{'peak MB':>9}")
    for m, v in r.items():
        print(f"{m:<18}{v['seconds']:>8.2f}{v['total']:>9.2f}{v['bytes'] / 1e6:>10.1f}{v['peak_mb']:>9.0f}")
    print(f"extract with / without integrity: loop {a_['seconds'] / b_['seconds']:.3f}×, "
          f"total (with finish and manifest) {a_['total'] / b_['total']:.3f}×, "
          f"store size {a_['bytes'] / b_['bytes']:.3f}×")  # fmt: skip
    print(f"open: open_cache {opened['checked'] * 1e3:.1f} ms vs the same without integrity "
          f"{opened['plain'] * 1e3:.1f} ms ({opened['checked'] / opened['plain']:.2f}×); the manifest check "
          f"alone {manifest * 1e3:.2f} ms")  # fmt: skip
    print(f"read every variable: through the checking store {read['checked']:.3f} s vs plain zarr without "
          f"checksums {read['plain']:.3f} s ({read['checked'] / read['plain']:.2f}×)")  # fmt: skip


def run(mode: str, ckpt: Path, clips: int, batch: int, out: Path) -> dict:
    cmd = [sys.executable, str(HERE), "--child", mode, "--ckpt", str(ckpt), "--clips", str(clips),
           "--batch", str(batch), "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    text = proc.stdout.read()
    if status != 0:
        raise SystemExit(f"{mode} failed: {text}")
    return {**json.loads(text.strip().splitlines()[-1]), "peak_mb": usage.ru_maxrss / 1024}


def loss_layouts(a) -> None:
    """`next_token_loss` against the two other ways to the same numbers, on toto-tiny-sized logits."""
    import torch
    import torch.nn.functional as F

    from toto_lens.run.reduce import next_token_loss

    torch.manual_seed(0)
    B, T, V = a.batch, 1026, 516
    logits, tokens = torch.randn(B, T, V), torch.randint(0, V, (B, T))

    def rows(lg, x):  # the logits without the last position, copied into (B·(T−1), V) rows
        return F.cross_entropy(lg[:, :-1].reshape(-1, V), x[:, 1:].reshape(-1), reduction="none")

    def logsumexp(lg, x):
        return torch.logsumexp(lg[:, :-1], -1) - lg[:, :-1].gather(-1, x[:, 1:, None]).squeeze(-1)

    ways = {"next_token_loss": next_token_loss, "rows": rows, "logsumexp": logsumexp}
    ref = next_token_loss(logits, tokens)
    for name, fn in ways.items():
        assert torch.allclose(fn(logits, tokens).view(B, T - 1), ref, atol=1e-5), name
    for threads in (1, os.cpu_count()):
        torch.set_num_threads(threads)
        best = {name: best_of(lambda fn=fn: fn(logits, tokens), repeat=10) for name, fn in ways.items()}
        print(f"threads {threads}: " + ", ".join(f"{n} {t * 1e3:.1f} ms ({t / best['next_token_loss']:.2f}×)"
                                                  for n, t in best.items()))  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="toto-small")
    p.add_argument("--clips", type=int, default=16)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--child")
    p.add_argument("--ckpt")
    p.add_argument("--out")
    p.add_argument("--integrity", action="store_true", help="the cost of checksums and the manifest")
    p.add_argument("--loss", action="store_true", help="the per-token loss's layouts against each other")
    a = p.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a.ckpt, a.clips, a.batch, a.out)))
        return
    if a.integrity:
        integrity(a)
        return
    if a.loss:
        loss_layouts(a)
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = make_checkpoint(tmp, a.model)
        print(f"{a.model}, {a.clips} clips of 1026 tokens, batch {a.batch}, threads {os.cpu_count()}")
        r: dict[str, dict] = {}
        for _ in range(a.rounds):
            for m in ("plain", "plain+data", "extract", "tl-style", "attn-frame", "attn-eager"):
                new = run(m, ckpt, a.clips, a.batch, tmp / f"{m}.zarr")
                if m not in r or new["seconds"] < r[m]["seconds"]:
                    r[m] = new
        big = run("extract", ckpt, 10 * a.clips, a.batch, tmp / "big.zarr")
    print(f"{'job':<12}{'seconds':>9}{'peak MB':>10}")
    for m, v in r.items():
        print(f"{m:<12}{v['seconds']:>9.2f}{v['peak_mb']:>10.0f}")
    print(f"{'extract ×10':<12}{big['seconds']:>9.2f}{big['peak_mb']:>10.0f}")
    print(
        f"extract setup (load checkpoint, create the store, outside the loop): {r['extract']['setup']:.2f} s"
    )
    print(
        f"extract / plain+data time: {r['extract']['seconds'] / r['plain+data']['seconds']:.3f}×  (target ≤ 1.15)"
    )
    print(f"extract / plain time:      {r['extract']['seconds'] / r['plain']['seconds']:.3f}×")
    print(
        f"peak memory, {10 * a.clips} vs {a.clips} clips: {big['peak_mb'] / r['extract']['peak_mb']:.3f}×  (target ≤ 1.2)"
    )
    print(f"tl-style / extract: time {r['tl-style']['seconds'] / r['extract']['seconds']:.2f}×, "
          f"peak memory {r['tl-style']['peak_mb'] / r['extract']['peak_mb']:.2f}× "
          f"(held {r['tl-style']['held_gb']:.2f} GB of residual streams)")  # fmt: skip
    eager, blocks = r["attn-eager"], r["attn-frame"]
    print(f"--attn frame, eager patterns / query blocks: time {eager['seconds'] / blocks['seconds']:.2f}×, "
          f"peak memory {eager['peak_mb'] / blocks['peak_mb']:.2f}×; query blocks / no attention: "
          f"{blocks['seconds'] / r['extract']['seconds']:.2f}× the time")  # fmt: skip


if __name__ == "__main__":
    main()
