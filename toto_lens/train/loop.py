"""The training loop: next-token prediction on token pools, with exact resume and torchrun scaling.

nanoGPT's loop in structure (warmup-cosine AdamW, gradient accumulation, clipping, periodic eval and
checkpoints), with litgpt's resume-by-default: running the same command again continues an unfinished
run from its last checkpoint and ends with bitwise the same weights on CPU. Under `torchrun` each
process takes its slice of the same global batch; DDP (or FSDP) averages the gradients. Under FSDP the
periodic checkpoints are sharded (torch's DCP, written by every rank, `state.save_sharded`) and the full
safetensors one comes at the end; activation checkpointing recomputes each block in the backward pass.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from toto_lens import distributed as D
from toto_lens.checkpoints import checkpoint_path, load_checkpoint
from toto_lens.errors import ConfigError, TotoLensError
from toto_lens.model import Toto
from toto_lens.progress import Progress
from toto_lens.progress import report as report_progress
from toto_lens.train.check import check_run
from toto_lens.train.config import TrainConfig, model_config
from toto_lens.train.data import TokenPools, build_pools
from toto_lens.train.evaluate import autocast, loss_sums, report_from_sums, token_losses, unigram_entropy
from toto_lens.train.optim import lr_at, make_optimizer, set_lr
from toto_lens.train.snapshots import clear_snapshots, save_snapshot
from toto_lens.train.state import (
    LOG,
    dcp_path,
    load_sharded,
    load_state,
    read_log,
    resume_point,
    save_sharded,
    save_state,
)


class TrainingDiverged(TotoLensError):
    exit_code = 3


@dataclass
class TrainResult:
    path: Path
    step: int
    complete: bool
    metrics: dict[str, Any] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)


def train(
    cfg: TrainConfig,
    name: str,
    *,
    overwrite: bool = False,
    stop_at: int | None = None,
    device: str | None = None,
    report: Callable[[str], None] | None = None,
    progress: Progress | None = None,
    log_steps: bool | None = None,
    trust_code: bool = False,
) -> TrainResult:
    """Train (or resume) the run `name`; returns where it stopped. `stop_at` ends early after that step.

    Every argument is checked first (`check_run`), before the tokenizer is fitted or a clip rendered.
    report receives the log lines (rank 0); progress (`toto_lens.progress`) hears of the tokenizer fit,
    the tokenizing of the pools and every step with the window's loss and tokens/s. log_steps: write a
    line per logged step through report (default: when there is no progress to show the steps).
    trust_code: allow a tokenizer whose spec names code (an external factory) to import it."""
    check_run(cfg, name, trust_code=trust_code)
    info = D.setup(device)
    threads = torch.get_num_threads()
    log_steps = progress is None if log_steps is None else log_steps
    try:
        return _train(cfg, name, info, overwrite, stop_at, report if info.main else None, progress,
                      log_steps, trust_code)  # fmt: skip
    finally:
        torch.set_num_threads(threads)  # a notebook calling train() keeps its own setting
        D.teardown(info)


def _split(cfg: TrainConfig, info: D.DistInfo) -> tuple[int, int]:
    if cfg.batch_size % info.world:
        raise ConfigError(
            f"a batch of {cfg.batch_size} clips does not divide over {info.world} processes; "
            "make --batch-size a multiple of the process count"
        )
    per_rank = cfg.batch_size // info.world
    micro = cfg.micro_batch or per_rank
    if per_rank % micro:
        raise ConfigError(
            f"--micro-batch {micro} must divide the {per_rank} clips each process takes per step"
        )
    return per_rank, micro


def _train(cfg, name, info, overwrite, stop_at, say, progress, log_steps, trust_code) -> TrainResult:
    from toto_lens.data.mix import mix_note
    from toto_lens.progress import say as tell
    from toto_lens.tokenizers import load_tokenizer

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    per_rank, micro = _split(cfg, info)
    folder = checkpoint_path(name)
    training = resume_point(folder, cfg, overwrite)
    if training is None:  # a fresh run: an older run's snapshots are removed (--overwrite) or refused
        clear_snapshots(folder, overwrite, remove=info.main)
    note = mix_note(cfg.data)
    if note and say:
        say(note)
    main_progress = progress if info.main else None
    # Rank 0 fits the tokenizer and renders the pools into the cache first; the others then read them.
    if not info.main:
        D.barrier(info)
    tell(main_progress, "train", f"tokenizer {cfg.tokenizer}")
    tok = load_tokenizer(cfg.tokenizer, trust_code=trust_code, progress=main_progress)
    pools = build_pools(cfg, tok, verbose=say if main_progress is None else None, progress=main_progress)
    if info.main:
        D.barrier(info)
    mc = model_config(cfg, tok.vocab_size, pools.seq_len)
    torch.manual_seed(cfg.seed)
    raw = Toto(mc).to(info.device)
    start, source = 0, None
    if training is not None:
        start, source = int(training["step"]), Path(training["source"])
    if source == folder:  # the full checkpoint; a sharded one is read after wrapping, shard by shard
        raw.load_state_dict(
            load_checkpoint(folder, device=info.device, trust_code=trust_code).model.state_dict()
        )
    model = D.wrap(raw, info, cfg.fsdp, cfg.activation_checkpointing)
    optimizer = make_optimizer(model, cfg, mc.mup_width_mult)
    if source == folder:
        load_state(folder, model, optimizer)
    elif source is not None:
        load_sharded(source, model, optimizer, start, info)
    forward = torch.compile(model) if cfg.compile else model
    log = read_log(source, start) if source is not None else []
    if say:
        verb = f"resuming {source} at step {start}" if start else f"training {folder}"
        say(
            f"{verb}: {mc.name} ({mc.num_params():,} parameters), {cfg.batch_size} clips × {pools.seq_len} tokens a step"
        )
    steps_end = cfg.steps if stop_at is None else min(cfg.steps, stop_at)
    tokens_per_step = cfg.batch_size * (pools.seq_len - 1)
    metrics: dict[str, Any] = {"unigram_entropy": unigram_entropy(pools.validation(), pools.layout)}
    window_loss, window_steps, window_time = 0.0, 0, 0.0
    meta = {"name": folder.name, "world_size": info.world, "params": mc.num_params(), "data_mix": pools.names}
    progress = progress if info.main and not log_steps else None

    saved = [(start, source)] if source is not None else []
    # A fresh run (nothing there, or --overwrite) clears, at its first save, what an older run left
    # of the other kind, which would otherwise shadow or refuse the new run's checkpoints on resume.
    stale = {} if source is not None else {"full": folder, "sharded": dcp_path(folder)}
    live_log = folder.parent / f".{folder.name}.{LOG}"  # rows as they come, for `tail -f`
    if info.main:
        live_log.parent.mkdir(parents=True, exist_ok=True)
        live_log.write_text("".join(json.dumps(r) + "\n" for r in log))

    def checkpoint(step: int, complete: bool, sharded: bool, full: bool, weights=None) -> None:
        state = {
            "config": cfg.to_dict(),
            "step": step,
            "complete": complete,
            "tokens_seen": step * tokens_per_step,
        }
        record = {**state, **meta, "metrics": metrics}
        where = folder
        if full:  # first: a crash before the last sharded save then leaves the run finished
            save_state(folder, model, raw, optimizer, record, log, tok, info.main, weights=weights)
        if sharded:  # this step's shards; save_sharded then removes the older steps'
            where = save_sharded(folder, model, optimizer, record, log, info)
        saved[:] = [(step, where)]
        if info.main:
            written = {"full": full, "sharded": sharded}
            for kind, path in stale.items():
                if not written[kind] and path.exists():
                    shutil.rmtree(path)
        stale.clear()

    def snapshot(step: int) -> dict[str, Any]:
        record = {"config": cfg.to_dict(), **meta, "tokens_seen": step * tokens_per_step}
        return save_snapshot(folder, step, model, raw, record, tok, info.main)

    if cfg.snapshot_every and start == 0:
        snapshot(0)  # the initialisation: every study's untrained control
    for step in range(start, steps_end):
        t0 = time.perf_counter()
        set_lr(optimizer, lr_at(step, cfg))
        batch = pools.batch(cfg.seed, step, cfg.batch_size)[info.rank * per_rank : (info.rank + 1) * per_rank]
        x = torch.as_tensor(batch, device=info.device)
        loss_sum = torch.zeros((), device=info.device)
        n_micro = per_rank // micro
        for i in range(n_micro):
            chunk = x[i * micro : (i + 1) * micro]
            sync = nullcontext() if i == n_micro - 1 or not hasattr(model, "no_sync") else model.no_sync()
            with sync, autocast(cfg.dtype, info.device):
                logits = forward(chunk[:, :-1])
                loss = F.cross_entropy(logits.float().flatten(0, 1), chunk[:, 1:].flatten()) / n_micro
            loss.backward()
            loss_sum += loss.detach()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        if not (math.isfinite(loss_sum.item()) and math.isfinite(float(grad_norm))):
            kept = (
                f"the last good checkpoint (step {saved[0][0]}) is kept in {saved[0][1]}"
                if saved
                else "no checkpoint was written yet"
            )
            raise TrainingDiverged(
                f"training diverged at step {step + 1} (loss {loss_sum.item():.4g}, gradient norm {float(grad_norm):.3g}); "
                f"{kept}; lower --lr or lengthen --warmup"
            )
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        window_loss += loss_sum.item()
        window_steps += 1
        window_time += time.perf_counter() - t0
        done = step + 1
        tps = window_steps * tokens_per_step / window_time
        report_progress(
            progress, "train", done, cfg.steps, "steps", loss=window_loss / window_steps, **{"tok/s": tps}
        )
        last = done == steps_end
        if done % cfg.log_every == 0 or done % cfg.eval_every == 0 or last:
            mean = D.all_sum(info, torch.tensor([window_loss, window_steps])).tolist()
            row = {
                "step": done, "tokens": done * tokens_per_step, "train_loss": mean[0] / mean[1],
                "lr": lr_at(step, cfg), "tokens_per_s": window_steps * tokens_per_step / window_time,
            }  # fmt: skip
            if done % cfg.eval_every == 0 or done == cfg.steps:
                metrics.update(evaluate(model, pools, cfg, info))
                row["val_loss"] = metrics["val_loss"]
            log.append(row)
            window_loss, window_steps, window_time = 0.0, 0, 0.0
            if info.main:
                with open(live_log, "a") as f:
                    f.write(json.dumps(row) + "\n")
            if say and log_steps:  # otherwise a progress display shows the same numbers
                val = f", val loss {row['val_loss']:.4f}" if "val_loss" in row else ""
                say(
                    f"step {done}/{cfg.steps}: train loss {row['train_loss']:.4f}{val}, {row['tokens_per_s']:,.0f} tokens/s"
                )
        complete = done == cfg.steps
        periodic = done % cfg.ckpt_every == 0 or last
        if cfg.sharded:  # full checkpoints at the end, and every full_ckpt_every steps if asked
            full = complete or (cfg.full_ckpt_every is not None and done % cfg.full_ckpt_every == 0)
        else:
            full = periodic
        weights = None  # gathered once when a snapshot and a full checkpoint fall on the same step
        if cfg.snapshot_every and done % cfg.snapshot_every == 0:
            weights = snapshot(done)  # before the checkpoint: a crash in between redoes this step
        if periodic or full:
            checkpoint(done, complete, sharded=cfg.sharded and periodic, full=full, weights=weights)
    end = max(start, steps_end)
    return TrainResult(folder, end, end == cfg.steps, metrics, log)


@torch.no_grad()
def evaluate(model, pools: TokenPools, cfg: TrainConfig, info: D.DistInfo) -> dict[str, Any]:
    """Validation losses over all sources and per source; each process takes every world-th clip."""
    model.eval()
    batch = max(1, cfg.micro_batch or cfg.batch_size)
    per_source = []
    for val in pools.val:
        losses = token_losses(
            model, val[info.rank :: info.world], batch=batch, dtype=cfg.dtype, device=info.device
        )
        per_source.append(loss_sums(losses, pools.layout))
    model.train()
    sums = D.all_sum(info, torch.from_numpy(np.stack(per_source))).numpy()  # (sources, 2 · parts)
    report = report_from_sums(sums.sum(0))
    report["by_source"] = {name: report_from_sums(row) for name, row in zip(pools.names, sums, strict=True)}
    return report
