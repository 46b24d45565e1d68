"""What a user waits for: the whole `toto-lens extract` command against a bare forward pass, process
against process (wall time from start to exit, start-up, imports, loading and writing included).

The jobs, on a checkpoint made by `toto-lens init --model MODEL --name bench-tiny` in a temporary
TOTO_LENS_CACHE (default toto-tiny, 512 clips, batch 16), in interleaved rounds:

  floor              a process that loads the checkpoint and runs a bare forward (`inference_mode`, no
                     hooks, nothing kept) over the same tokens, read from a .npy file written beforehand,
                     outside the timed region (the tokens of an untimed warm-up extraction's store)
  floor+loss         the same forward and the per-token loss (`next_token_loss`): what any extraction
                     must compute besides the store
  floor+data         the floor, the clips rendered and tokenized inside the process, batch after batch
  extract            the command itself: `toto-lens extract --ckpt bench-tiny --clips N --batch-size B
                     --out STORE` (default acts: pooled and per-frame activations of every layer, loss)
  extract-noprefetch the same command with prefetch=0 (each batch rendered and tokenized in turn)
  extract-before     prefetch=0 and scikit-learn imported, as the extractor was before both changes
  extract-shards     the command reading the same clips from token shards (`--data tokens:SHARDS`,
                     written beforehand by `toto-lens data tokenize`, untimed): no rendering, no tokenizing

`--jobs` picks which run beside the floor (default floor+loss, floor+data, extract, extract-shards).
Printed: each job's fastest and median round and its CPU seconds, and extract / floor (target ≤ 1.1) beside the other ratios.

Usage: OPENBLAS_NUM_THREADS=1 python benchmarks/bench_extract_process.py [--model toto-tiny] [--clips 512]
           [--batch 16] [--rounds 2] [--jobs floor+loss,floor+data,extract,extract-shards]
       OMP_NUM_THREADS=1 … the same with one torch thread: the forward pass leaves a core free
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

TOTO_LENS = Path(sys.executable).with_name("toto-lens")

# The floor processes: nothing in them but what any way of running the model must do.
FLOOR = """
import sys
import numpy as np
import torch
from toto_lens.checkpoints import load_checkpoint
ckpt, tokens, batch = sys.argv[1], np.load(sys.argv[2]), int(sys.argv[3])
model = load_checkpoint(ckpt).model
with torch.inference_mode():
    for s in range(0, len(tokens), batch):
        model(torch.as_tensor(tokens[s : s + batch]))
"""
FLOOR_LOSS = """
import sys
import numpy as np
import torch
from toto_lens.checkpoints import load_checkpoint
from toto_lens.run.reduce import next_token_loss
ckpt, tokens, batch = sys.argv[1], np.load(sys.argv[2]), int(sys.argv[3])
model = load_checkpoint(ckpt).model
with torch.inference_mode():
    for s in range(0, len(tokens), batch):
        x = torch.as_tensor(tokens[s : s + batch])
        next_token_loss(model(x), x).numpy()
"""
FLOOR_DATA = """
import sys
import torch
from toto_lens.checkpoints import load_checkpoint
from toto_lens.run.plan import prepare
ckpt, clips, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ck = load_checkpoint(ckpt)
_, source, tok, layout, _ = prepare(
    ck, data=None, split="val", clips=clips, batch_size=batch, out=None, layers="all",
    acts=("pooled", "frame"), token_clips=None, attn=(), pattern_clips=4, dtype="float16",
)
with torch.inference_mode():
    for s in range(0, clips, batch):
        ck.model(torch.as_tensor(layout.encode_clips([source[i] for i in range(s, min(s + batch, clips))], tok)))
"""
BEFORE = """
import sklearn.datasets  # what reading the bundled digits imported before
import toto_lens.run.extractor as extractor
extractor.extract.__kwdefaults__["prefetch"] = 0
from toto_lens.cli import main
main()
"""
NO_PREFETCH = """
import toto_lens.run.extractor as extractor
extractor.extract.__kwdefaults__["prefetch"] = 0
from toto_lens.cli import main
main()
"""


def timed(argv: list[str], env: dict) -> dict:
    """Wall seconds of one process from start to exit, the CPU seconds it used (user + system, every
    thread) and its peak resident memory; fails loudly."""
    with tempfile.TemporaryFile("w+") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        if proc.returncode:
            log.seek(0)
            raise SystemExit(f"{' '.join(argv[:4])} … failed:\n{log.read()[-2000:]}")
    return {"seconds": seconds, "cpu": usage.ru_utime + usage.ru_stime, "peak_mb": usage.ru_maxrss / 1024}


def process(a) -> None:
    import shutil

    import numpy as np
    import zarr

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "TOTO_LENS_CACHE": str(tmp / "cache")}
        init = [str(TOTO_LENS), "init", "--model", a.model, "--name", "bench-tiny", "--seed", "0"]
        subprocess.run(init, env=env, check=True, capture_output=True)
        store, tokens = tmp / "s.zarr", tmp / "tokens.npy"
        extract_args = ["extract", "--ckpt", "bench-tiny", "--clips", str(a.clips), "--batch-size",
                        str(a.batch), "--out", str(store)]  # fmt: skip
        timed([str(TOTO_LENS), *extract_args], env)  # warm-up, untimed: its store gives the floor's tokens
        ids = zarr.open_group(str(store), mode="r")["tokens"][:].astype(np.int64)  # stored as int32
        np.save(tokens, ids)
        shards = tmp / "shards"
        tokenize = [str(TOTO_LENS), "data", "tokenize", "--data", "moving-digits", "--split", "val", "--clips",
                    str(a.clips), "--tokenizer", tokenizer_of(tmp / "cache" / "checkpoints" / "bench-tiny"),
                    "--out", str(shards)]  # fmt: skip
        subprocess.run(tokenize, env=env, check=True, capture_output=True)
        jobs = {
            "floor": [sys.executable, "-c", FLOOR, "bench-tiny", str(tokens), str(a.batch)],
            "floor+loss": [sys.executable, "-c", FLOOR_LOSS, "bench-tiny", str(tokens), str(a.batch)],
            "floor+data": [sys.executable, "-c", FLOOR_DATA, "bench-tiny", str(a.clips), str(a.batch)],
            "extract": [str(TOTO_LENS), *extract_args],
            "extract-noprefetch": [sys.executable, "-c", NO_PREFETCH, *extract_args],
            "extract-before": [sys.executable, "-c", BEFORE, *extract_args],
            "extract-shards": [str(TOTO_LENS), *extract_args, "--data", f"tokens:{shards}"],
        }
        print(f"{a.model}, {len(ids)} clips of {ids.shape[1]} tokens, batch {a.batch}, cores {os.cpu_count()}, "
              f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, "
              f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")  # fmt: skip
        jobs = {m: argv for m, argv in jobs.items() if m in a.jobs or m == "floor"}
        r: dict[str, dict] = {}
        rounds: dict[str, list[float]] = {}
        cpu: dict[str, list[float]] = {}
        for i in range(a.rounds):
            for m, argv in jobs.items():
                shutil.rmtree(store, ignore_errors=True)  # each extraction starts from nothing
                new = timed(argv, env)
                print(f"  round {i + 1} {m:<19}{new['seconds']:>8.2f} s {new['cpu']:>8.2f} CPU s", flush=True)
                rounds.setdefault(m, []).append(new["seconds"])
                cpu.setdefault(m, []).append(new["cpu"])
                if m not in r or new["seconds"] < r[m]["seconds"]:
                    r[m] = new
    # The fastest round is what a job costs without the machine's other load; on a shared machine whose
    # load comes and goes the median is printed beside it: a ratio both agree on is not an accident.
    # CPU seconds (the least of the rounds) say how much work a job is, whatever the load: on cores the
    # forward pass already fills, work overlapped in a thread still costs its CPU time.
    median = {m: float(np.median(v)) for m, v in rounds.items()}
    work = {m: min(v) for m, v in cpu.items()}
    print(f"{'process':<20}{'fastest s':>10}{'/ floor':>9}{'median s':>10}{'/ floor':>9}{'CPU s':>8}{'/ floor':>9}"
          f"{'peak MB':>9}")  # fmt: skip
    for m, v in r.items():
        print(f"{m:<20}{v['seconds']:>10.2f}{v['seconds'] / r['floor']['seconds']:>8.3f}×"
              f"{median[m]:>10.2f}{median[m] / median['floor']:>8.3f}×{work[m]:>8.2f}{work[m] / work['floor']:>8.3f}×"
              f"{v['peak_mb']:>9.0f}")  # fmt: skip

    def ratio(m: str, base: str) -> str:
        return f"{r[m]['seconds'] / r[base]['seconds']:.3f}×" if m in r and base in r else "not run"

    print(f"extract / floor: {ratio('extract', 'floor')}  (target ≤ 1.1); extract-shards / floor: "
          f"{ratio('extract-shards', 'floor')}")  # fmt: skip
    print(f"what extraction must compute: floor+loss / floor {ratio('floor+loss', 'floor')}, floor+data / floor "
          f"{ratio('floor+data', 'floor')}; extract / floor+data {ratio('extract', 'floor+data')}")  # fmt: skip
    if "extract-before" in r and "extract-noprefetch" in r and "extract" in r:
        print(f"prefetch saves {r['extract-noprefetch']['seconds'] - r['extract']['seconds']:.2f} s, not "
              "importing scikit-learn "
              f"{r['extract-before']['seconds'] - r['extract-noprefetch']['seconds']:.2f} s")  # fmt: skip


def tokenizer_of(ckpt: Path) -> str:
    """The tokenizer a checkpoint records (its name: the shards must be made with the model's own)."""
    return json.loads((ckpt / "config.json").read_text())["tokenizer"]["name"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="toto-tiny")
    p.add_argument("--clips", type=int, default=512)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--jobs", default="floor+loss,floor+data,extract,extract-shards",
                   help="jobs besides floor, comma-separated (also extract-noprefetch, extract-before)")  # fmt: skip
    a = p.parse_args()
    a.jobs = set(a.jobs.split(","))
    process(a)


if __name__ == "__main__":
    main()
