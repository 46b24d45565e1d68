"""Training at scale on this machine: activation checkpointing's memory and time, full vs sharded saves.

1. Activation checkpointing: the real trainer (`toto_lens.train.train`) in a child process per setting,
   on a model wide enough for activations to matter (default toto-mini, 8 clips × 1026 tokens a step),
   with and without `activation_checkpointing`, taking turns. Peak memory is the child's ru_maxrss
   (`os.wait4`); the part the steps add is that peak minus the child's resident set just before its
   first step (read from /proc when the trainer reports that it starts). Step time is the trainer's own
   (`tokens_per_s` log rows, every step): the fastest after the first, since load elsewhere only adds
   time. The two runs' losses are printed: they must be equal.
2. Checkpoint saves under two-process FSDP (torchrun, gloo): the trainer's two savers on a model after
   one AdamW step, taking turns: `save_state` (full: weights and AdamW moments gathered into rank 0,
   which writes the safetensors checkpoint) against `save_sharded` (DCP: each rank writes its own shards,
   barrier, rename). Timed on rank 0 from a barrier before to a barrier after, best of `--repeat`.

Usage: python benchmarks/bench_scale.py [--quick] [--only ac|save] [--model toto-mini]
       [--save-models toto-small toto-base]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()


def rss_kib() -> int:
    """This process's resident set now (/proc/self/status VmRSS), KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def child_ac(args: argparse.Namespace) -> None:
    """One training run; prints a JSON line: RSS before the first step, step times, losses."""
    from toto_lens.train import TrainConfig, train

    cfg = TrainConfig(
        model=args.model, tokenizer=args.tokenizer, steps=args.steps, batch_size=args.batch,
        train_clips=32, val_clips=2, warmup=1, log_every=1, eval_every=10**6, ckpt_every=10**6,
        threads=args.threads, activation_checkpointing=args.ac,
    )  # fmt: skip
    before: list[int] = []

    def report(msg: str) -> None:
        if msg.startswith("training ") and not before:
            before.append(rss_kib())

    result = train(cfg, f"bench-ac-{int(args.ac)}", overwrite=True, report=report)
    tokens = args.batch * 1025
    print(
        json.dumps(
            {
                "rss_before_steps_kib": before[0],
                "step_s": [tokens / r["tokens_per_s"] for r in result.log],
                "loss": [r["train_loss"] for r in result.log],
            }
        )
    )


def child_save(args: argparse.Namespace) -> None:
    """Under torchrun: FSDP model after one AdamW step, then full and sharded saves taking turns."""
    import torch
    import torch.nn.functional as F

    from toto_lens import distributed as D
    from toto_lens.config import ModelConfig
    from toto_lens.model import Toto
    from toto_lens.tokenizers import load_tokenizer
    from toto_lens.train import TrainConfig
    from toto_lens.train.optim import make_optimizer
    from toto_lens.train.state import dcp_path, save_sharded, save_state

    torch.set_num_threads(1)
    info = D.setup("cpu")
    mc = ModelConfig.from_name(args.save_model)
    cfg = TrainConfig(model=args.save_model, fsdp=True)
    torch.manual_seed(0)
    raw = Toto(mc)
    model = D.wrap(raw, info, fsdp=True)
    optimizer = make_optimizer(model, cfg, mc.mup_width_mult)
    x = torch.randint(0, mc.vocab_size, (1, 65))
    F.cross_entropy(model(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten()).backward()
    optimizer.step()
    tok = load_tokenizer("kmeans-64")  # only its spec and state go into the full checkpoint
    folder = Path(os.environ["TOTO_LENS_CACHE"]) / "checkpoints" / f"bench-save-{args.save_model}"
    record = {"config": cfg.to_dict(), "step": 1, "complete": False}
    times: dict[str, list[float]] = {"full": [], "dcp": []}
    for r in range(args.repeat + 1):  # the first round is the warm-up
        for kind in ("full", "dcp") if r % 2 == 0 else ("dcp", "full"):
            D.barrier(info)
            t0 = time.perf_counter()
            if kind == "full":
                save_state(folder, model, raw, optimizer, record, [], tok, info.main)
            else:
                save_sharded(folder, model, optimizer, record, [], info)
            D.barrier(info)
            if r:
                times[kind].append(time.perf_counter() - t0)
    if info.main:
        size = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
        print(json.dumps({"params": mc.num_params(), "bytes": size, **times}))
        shutil.rmtree(folder), shutil.rmtree(dcp_path(folder))  # gigabytes for toto-base
    D.teardown(info)


def run_child(argv: list[str], env: dict[str, str]) -> tuple[dict, int]:
    """(the child's JSON line, its peak resident set in KiB from wait4)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, not all children's
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        if proc.returncode:
            sys.exit(f"child failed ({proc.returncode}): {' '.join(argv)}\n{err.read()[-3000:]}")
        line = [x for x in out.read().splitlines() if x.startswith("{")][-1]
    return json.loads(line), usage.ru_maxrss


def activation_checkpointing(args: argparse.Namespace, env: dict[str, str]) -> None:
    print(
        f"\n1. activation checkpointing: {args.model}, {args.batch} clips × 1026 tokens a step, "
        f"{args.steps} steps, {args.threads} threads, tokenizer {args.tokenizer}, {args.rounds} round(s)"
    )
    base = [
        sys.executable, str(HERE), "--child", "ac", "--model", args.model, "--batch", str(args.batch),
        "--steps", str(args.steps), "--threads", str(args.threads), "--tokenizer", args.tokenizer,
    ]  # fmt: skip
    run_child(base, env)  # fits the tokenizer and tokenizes the pools, untimed
    runs: dict[bool, list[tuple[dict, int]]] = {False: [], True: []}
    for r in range(args.rounds):
        for ac in (False, True) if r % 2 == 0 else (True, False):
            runs[ac].append(run_child(base + (["--ac"] if ac else []), env))
    rows = {}
    for ac, results in runs.items():
        peak = min(m for _, m in results) / 1024
        steps = min(m - out["rss_before_steps_kib"] for out, m in results) / 1024
        step_s = min(s for out, _ in results for s in out["step_s"][1:])  # noise only adds time
        rows[ac] = (peak, steps, step_s)
        label = "with" if ac else "without"
        print(
            f"   {label:<8} peak RSS {peak:7.0f} MiB (steps add {steps:6.0f} MiB), "
            f"{step_s:.3f} s a step (fastest after the first)"
        )
    same = runs[False][0][0]["loss"] == runs[True][0][0]["loss"]
    (p0, s0, t0), (p1, s1, t1) = rows[False], rows[True]
    print(
        f"   with / without: peak RSS {p1 / p0:.2f}×, memory the steps add {s1 / s0:.2f}×, "
        f"step time {t1 / t0:.2f}×; losses {'identical' if same else 'DIFFER'}"
    )


def saves(args: argparse.Namespace, env: dict[str, str]) -> None:
    print(f"\n2. checkpoint save, two-process FSDP (gloo), 1 thread a process, best of {args.repeat}")
    for name in args.save_models:
        argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                str(HERE), "--child", "save", "--save-model", name, "--repeat", str(args.repeat)]  # fmt: skip
        out, peak = run_child(argv, env)
        full, dcp = min(out["full"]), min(out["dcp"])
        print(
            f"   {name:<11} {out['params'] / 1e6:6.1f} M parameters, {out['bytes'] / 2**20:7.1f} MiB of "
            f"weights + AdamW: full {full:6.2f} s, sharded (DCP) {dcp:6.2f} s → "
            f"full / DCP {full / dcp:.2f}× "
            f"(largest process {peak / 1024:.0f} MiB)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=("ac", "save"), help=argparse.SUPPRESS)
    parser.add_argument("--ac", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="toto-mini", help="model of part 1")
    parser.add_argument("--batch", type=int, default=8, help="clips a step in part 1")
    parser.add_argument("--steps", type=int, default=5, help="steps per run in part 1")
    parser.add_argument("--threads", type=int, default=2, help="torch threads in part 1")
    parser.add_argument("--rounds", type=int, default=2, help="runs per setting in part 1, alternating")
    parser.add_argument("--tokenizer", default="kmeans-64", help="tokenizer of part 1")
    parser.add_argument("--save-model", default="toto-small", help=argparse.SUPPRESS)
    parser.add_argument("--save-models", nargs="+", default=["toto-small", "toto-base"], help="part 2")
    parser.add_argument("--repeat", type=int, default=3, help="timed saves of each kind in part 2")
    parser.add_argument("--cache", default="/tmp/toto_lens_bench_cache", help="TOTO_LENS_CACHE")
    parser.add_argument("--quick", action="store_true", help="one round, toto-small saves only")
    parser.add_argument("--only", choices=("ac", "save"), help="run only part 1 (ac) or part 2 (save)")
    args = parser.parse_args()
    if args.child == "ac":
        return child_ac(args)
    if args.child == "save":
        return child_save(args)
    if args.quick:
        args.rounds, args.steps, args.repeat, args.save_models = 1, 3, 1, ["toto-small"]
    env = {**os.environ, "TOTO_LENS_CACHE": args.cache}
    import torch

    print(
        f"torch {torch.__version__}, {os.cpu_count()} CPUs, cache {args.cache}, "
        f"load average {os.getloadavg()[0]:.2f} at start"
    )
    if args.only != "save":
        activation_checkpointing(args, env)
    if args.only != "ac":
        saves(args, env)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
