"""Training speed: the real trainer against a plain training loop, and the best dtype and threads here.

1. `toto_lens.train.train` on the default config (toto-tiny, 8 clips × 1026 tokens a step, kmeans-512,
   float32) against a plain loop written below with the same math: the same model (`model_config`),
   init seed, token batches (`pools.batch(seed, step, 8)`), AdamW β = (0.9, 0.95) with decay on matrices
   only, warmup-cosine learning rate, next-token cross-entropy and clipping at 1.0; the losses of both are
   printed side by side as the check that they compute the same thing. Both run the same steps, timed in
   windows of `--window` steps: the trainer's `tokens_per_s` log rows (which time only its step loop) and
   the plain loop's own clock over the same windows. The first window is the warm-up of both and is left
   out of the steady rate. The trainer's whole call is timed too and split, from the moments its
   `report` lines arrive, into setup, steps, the final evaluation and the final checkpoint (it always
   evaluates and checkpoints at its last step, whatever `eval_every` / `ckpt_every` say).
2. Step time of the plain loop at float32 and under bf16 autocast, with 1 and 2 threads, for toto-tiny
   and toto-small (width 256), to pick the default dtype and thread count.

Model FLOP utilisation, as nanoGPT's `estimate_mfu` and PaLM (Chowdhery et al. 2022, appendix B):
FLOPs per token = 6·N + 12·L·d·T, where N counts the weights that do matmuls (the blocks and the output
head; the embedding lookup does none), L the layers, d the width and T the 1025 input positions. The
attention term counts the whole T×T score matrix, as PaLM does, though causal SDPA skips about half of
it. MFU divides the achieved FLOP/s by a peak measured in the same run (2048² matmuls, per dtype and
thread count), not the datasheet's.

The machine may be shared: each section prints how many cores other processes used meanwhile.

Usage: python benchmarks/bench_train.py [--quick] [--threads 2] [--steps 30] [--cache DIR]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from _timing import best_of

from toto_lens.config import ModelConfig
from toto_lens.model import Toto
from toto_lens.train import TrainConfig, model_config, train
from toto_lens.train.optim import lr_at

DTYPES = ("float32", "bfloat16")


class CpuMeter:
    """Average cores busy outside this process since it started: /proc/stat's busy time minus ours."""

    def __init__(self) -> None:
        self.t0, self.busy0, self.own0 = time.perf_counter(), _busy_seconds(), _own_seconds()

    def others(self) -> float:
        if self.busy0 is None:
            return float("nan")
        busy, own = _busy_seconds() - self.busy0, _own_seconds() - self.own0
        return max(0.0, busy - own) / (time.perf_counter() - self.t0)

    def note(self) -> str:
        o = self.others()
        warn = "  ← disturbed, rerun when the machine is quiet" if o > 0.25 else ""
        return f"(other processes used {o:.2f} cores meanwhile){warn}"


def _busy_seconds() -> float | None:
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system


def flops_per_token(mc: ModelConfig, T: int) -> tuple[float, int]:
    """(6·N + 12·L·d·T, N) with N = block weights + output head (PaLM appendix B; nanoGPT)."""
    n = mc.num_params(embeddings=False) + mc.vocab_size * mc.dim
    return 6 * n + 12 * mc.n_layers * mc.dim * T, n


def matmul_peak(dtype: torch.dtype, threads: int, repeat: int, n: int = 2048) -> float:
    """Best GFLOP/s of an n×n @ n×n matmul at `threads` threads."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    return 2 * n**3 / best_of(lambda: a @ b, repeat)[0] / 1e9


def plain_loop(cfg: TrainConfig, mc: ModelConfig, dtype: str) -> Callable[[int, torch.Tensor], torch.Tensor]:
    """nanoGPT's inner loop for one model: returns step(i, tokens (B, L)) → loss, doing one AdamW step."""
    torch.manual_seed(cfg.seed)
    model = Toto(mc)
    params = list(model.parameters())
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        ],
        lr=cfg.lr,
        betas=(cfg.beta1, cfg.beta2),
    )
    bf16 = dtype == "bfloat16"

    def step(i: int, x: torch.Tensor) -> torch.Tensor:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(i, cfg)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x[:, :-1])  # (B, T, V)
            loss = F.cross_entropy(logits.float().flatten(0, 1), x[:, 1:].flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    return step


def run_plain(cfg: TrainConfig, mc: ModelConfig, batches: list[torch.Tensor], window: int) -> dict:
    step = plain_loop(cfg, mc, cfg.dtype)
    times, losses = [], []
    for i, x in enumerate(batches):
        t0 = time.perf_counter()
        losses.append(step(i, x).item())
        times.append(time.perf_counter() - t0)
    tokens = batches[0].shape[0] * (batches[0].shape[1] - 1)
    windows = [times[i : i + window] for i in range(0, len(times), window)]
    return {
        "tps": [len(w) * tokens / sum(w) for w in windows],
        "loss": [statistics.fmean(losses[i : i + window]) for i in range(0, len(losses), window)],
    }


def run_trainer(cfg: TrainConfig, name: str) -> dict:
    """One `train` call; its report lines time-stamp the end of setup and of the last logged step."""
    said: list[tuple[float, str]] = []
    t0 = time.perf_counter()
    result = train(cfg, name, overwrite=True, report=lambda msg: said.append((time.perf_counter(), msg)))
    t_end = time.perf_counter()
    rows = result.log
    t_setup = next(t for t, msg in said if msg.startswith("training "))
    t_last = said[-1][0]
    step_time, prev = 0.0, 0
    for r in rows:
        step_time += (r["tokens"] - prev) / r["tokens_per_s"]
        prev = r["tokens"]
    return {
        "tps": [r["tokens_per_s"] for r in rows],
        "loss": [r["train_loss"] for r in rows],
        "wall": t_end - t0,
        "setup": t_setup - t0,
        "steps": step_time,
        "eval": t_last - t_setup - step_time,  # the last step's evaluation, plus log-row bookkeeping
        "ckpt": t_end - t_last,
    }


def steady(runs: list[dict]) -> tuple[float, float]:
    """(best, median) tokens/s over the windows of all runs after each one's first (the warm-up)."""
    rest = [v for run in runs for v in (run["tps"][1:] or run["tps"])]
    return max(rest), statistics.median(rest)


def compare(cfg: TrainConfig, pools, vocab: int, rounds: int, window: int, peaks: dict) -> None:
    mc = model_config(cfg, vocab, pools.seq_len)
    batches = [torch.as_tensor(pools.batch(cfg.seed, s, cfg.batch_size)) for s in range(cfg.steps)]
    T = pools.seq_len - 1
    fpt, n = flops_per_token(mc, T)
    print(
        f"\n1. trainer vs plain loop: {mc.name}, {cfg.batch_size} clips × {pools.seq_len} tokens, "
        f"{cfg.dtype}, {torch.get_num_threads()} threads, {cfg.steps} steps in windows of {window}, "
        f"{rounds} round(s)"
    )
    print(
        f"   FLOPs/token = 6·N + 12·L·d·T = 6·{n:,} + 12·{mc.n_layers}·{mc.dim}·{T} = {fpt / 1e6:.2f} M "
        f"(N = blocks {mc.num_params(embeddings=False):,} + head {mc.vocab_size * mc.dim:,}; "
        f"attention term {12 * mc.n_layers * mc.dim * T / fpt:.0%} of it)"
    )
    meter = CpuMeter()
    trainer_runs, plain_runs = [], []
    for r in range(rounds):  # AB BA AB …, so that a drift in the machine's load hits both alike
        order = ("trainer", "plain") if r % 2 == 0 else ("plain", "trainer")
        for who in order:
            if who == "trainer":
                trainer_runs.append(run_trainer(cfg, "bench-train"))
            else:
                plain_runs.append(run_plain(cfg, mc, batches, window))
    print(f"   tokens/s per window of {window} steps (first = warm-up), best of {rounds} round(s):")
    t_win = [max(run["tps"][i] for run in trainer_runs) for i in range(len(trainer_runs[0]["tps"]))]
    p_win = [max(run["tps"][i] for run in plain_runs) for i in range(len(plain_runs[0]["tps"]))]
    print("     trainer " + " ".join(f"{v:>8,.0f}" for v in t_win))
    print("     plain   " + " ".join(f"{v:>8,.0f}" for v in p_win))
    dloss = max(abs(a - b) for a, b in zip(trainer_runs[0]["loss"], plain_runs[0]["loss"], strict=True))
    print(
        "   train loss per window: trainer "
        + " ".join(f"{v:.4f}" for v in trainer_runs[0]["loss"])
        + f"; plain max |Δ| = {dloss:.2e} (same math)"
    )
    peak = peaks[(cfg.dtype, torch.get_num_threads())]
    for label, runs in (("trainer", trainer_runs), ("plain", plain_runs)):
        medians = " ".join(f"{steady([run])[1]:>8,.0f}" for run in runs)
        print(f"   steady median window of each run, {label:<8} {medians}")
    t_best, t_med = steady(trainer_runs)
    p_best, p_med = steady(plain_runs)
    for label, best, med in (("trainer", t_best, t_med), ("plain", p_best, p_med)):
        print(
            f"   {label:<8} steady {best:>8,.0f} tokens/s best window, {med:>8,.0f} median window "
            f"→ {best * fpt / 1e9:6.1f} GFLOP/s, MFU {best * fpt / 1e9 / peak:.1%} of the measured "
            f"{cfg.dtype} peak {peak:.0f} GFLOP/s"
        )
    causal = fpt - 6 * mc.n_layers * mc.dim * T  # the score matrix's masked half not counted
    print(
        f"   (counting only the causal half of the attention scores, {causal / 1e6:.2f} M FLOPs/token, "
        f"the trainer's MFU is {t_best * causal / 1e9 / peak:.1%})"
    )
    print(f"   trainer / plain: {t_best / p_best:.3f}× (best windows), {t_med / p_med:.3f}× (medians)")
    w = min(trainer_runs, key=lambda run: run["wall"])
    tokens = cfg.steps * cfg.batch_size * T
    print(
        f"   trainer whole call {w['wall']:.2f} s = setup {w['setup']:.2f} + steps {w['steps']:.2f} "
        f"+ last-step eval {w['eval']:.2f} + last-step checkpoint {w['ckpt']:.2f} s "
        f"→ {tokens / w['wall']:,.0f} tokens/s end to end"
    )
    print(f"   {meter.note()}")


def grid(
    cfg: TrainConfig,
    pools,
    vocab: int,
    models: list[tuple[str, int, int]],
    peaks: dict,
    default: tuple[str, int],
) -> None:
    """Part 2 for (model, clips, timed steps) each; `default` is TrainConfig's (dtype, threads)."""
    print(
        "\n2. plain-loop step time by dtype and threads: settings take turns step by step (a burst of "
        "load elsewhere spoils one step of each, not all of one), fastest step after one warm-up; MFU "
        "against the measured peak of the same dtype and threads"
    )
    print(
        f"   {'model':<11} {'clips':>5} {'dtype':<9} {'threads':>7} {'s/step':>8} {'tokens/s':>9} {'MFU':>6}"
    )
    meter = CpuMeter()
    rates: dict[str, dict[tuple[str, int], float]] = {}
    settings = list(itertools.product(DTYPES, (1, 2)))
    for name, batch, steps in models:
        mc = model_config(cfg.replace(model=name), vocab, pools.seq_len)
        fpt, _ = flops_per_token(mc, pools.seq_len - 1)
        loops = {s: plain_loop(cfg, mc, s[0]) for s in settings}
        times: dict[tuple[str, int], list[float]] = {s: [] for s in settings}
        for i in range(1 + steps):
            x = torch.as_tensor(pools.batch(cfg.seed, i, batch))
            for s in settings:
                torch.set_num_threads(s[1])
                t0 = time.perf_counter()
                loops[s](i, x)
                times[s].append(time.perf_counter() - t0)
        tokens = batch * (pools.seq_len - 1)
        for dtype, threads in settings:
            seconds = min(times[(dtype, threads)][1:])
            tps = tokens / seconds
            mfu = tps * fpt / 1e9 / peaks[(dtype, threads)]
            rates.setdefault(name, {})[(dtype, threads)] = tps
            print(
                f"   {name:<11} {batch:>5} {dtype:<9} {threads:>7} {seconds:>8.3f} {tps:>9,.0f} {mfu:>6.1%}"
            )
    print(f"   {meter.note()}")
    gain = peaks[("bfloat16", 2)] / peaks[("float32", 2)]
    for name, r in rates.items():
        (dtype, threads), tps = max(r.items(), key=lambda kv: kv[1])
        print(
            f"   {name}: fastest {dtype} × {threads} threads ({tps:,.0f} tokens/s); bf16 / fp32 "
            f"{r[('bfloat16', 1)] / r[('float32', 1)]:.2f}× at 1 thread, "
            f"{r[('bfloat16', 2)] / r[('float32', 2)]:.2f}× at 2 (matmul peak {gain:.2f}×); "
            f"2 / 1 threads {r[('float32', 2)] / r[('float32', 1)]:.2f}× fp32, "
            f"{r[('bfloat16', 2)] / r[('bfloat16', 1)]:.2f}× bf16"
        )
    tiny = rates[models[0][0]]
    (dtype, threads), tps = max(tiny.items(), key=lambda kv: kv[1])
    versus = f"runs at {tiny[default] / tps:.2f}× of it" if default in tiny else "was not measured"
    print(
        f"   conclusion: train {models[0][0]} with {dtype} × {threads} threads; TrainConfig's default "
        f"({default[0]} × {default[1]} threads) {versus}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="threads of part 1")
    parser.add_argument("--steps", type=int, default=30, help="training steps of part 1, per run")
    parser.add_argument("--window", type=int, default=5, help="steps per timing window (the log_every)")
    parser.add_argument("--rounds", type=int, default=3, help="trainer and plain runs each, alternating")
    parser.add_argument("--repeat", type=int, default=3, help="timed steps per setting in part 2 (×2 tiny)")
    parser.add_argument("--small-batch", type=int, default=8, help="clips a step for toto-small in part 2")
    parser.add_argument("--cache", default="/tmp/toto_lens_bench_cache", help="TOTO_LENS_CACHE for the run")
    parser.add_argument("--quick", action="store_true", help="≈ 1 minute: fewer steps, one round")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.rounds, args.repeat, args.small_batch = 10, 1, 1, 1
    if args.steps % args.window:
        parser.error("--steps must be a multiple of --window")
    os.environ["TOTO_LENS_CACHE"] = args.cache
    from toto_lens.tokenizers import load_tokenizer
    from toto_lens.train.data import build_pools

    default = (TrainConfig().dtype, TrainConfig().threads or torch.get_num_threads())
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {os.cpu_count()} CPUs ({torch.backends.cpu.get_cpu_capability()}), "
        f"cache {args.cache}, load average {os.getloadavg()[0]:.2f} at start"
    )
    cfg = TrainConfig(
        train_clips=64, val_clips=16, steps=args.steps, log_every=args.window,
        eval_every=10**6, ckpt_every=10**6, threads=args.threads,
    )  # fmt: skip
    t0 = time.perf_counter()
    tok = load_tokenizer(cfg.tokenizer)  # fitted and cached on the first run only
    pools = build_pools(cfg, tok)
    print(f"tokenizer and pools ready in {time.perf_counter() - t0:.1f} s (untimed)")

    meter = CpuMeter()
    counts = sorted({1, 2, args.threads})
    peaks = {
        (d, t): matmul_peak(getattr(torch, d), t, 2 if args.quick else 5) for d in DTYPES for t in counts
    }
    torch.set_num_threads(args.threads)
    print(
        "measured matmul peak (2048², GFLOP/s): "
        + ", ".join(f"{d} × {t} threads {v:.0f}" for (d, t), v in peaks.items())
        + f"  {meter.note()}"
    )
    compare(cfg, pools, tok.vocab_size, args.rounds, args.window, peaks)
    # toto-tiny's steps are ≈ 10× cheaper than toto-small's: it gets twice as many
    models = [("toto-tiny", cfg.batch_size, 2 * args.repeat), ("toto-small", args.small_batch, args.repeat)]
    grid(cfg, pools, tok.vocab_size, models, peaks, default)
    torch.set_num_threads(args.threads)


if __name__ == "__main__":
    main()
