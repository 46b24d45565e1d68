"""`toto-lens train …` (train or resume a run) and `toto-lens train sweep-lr …` (the μP grid)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from toto_lens.cli.app import JsonOpt, TrustOpt, app, console, on_interrupt, show

train_app = typer.Typer(help="Train Toto checkpoints on the bundled clips.", invoke_without_command=True)
app.add_typer(train_app, name="train")

UNSET = None  # defaults come from TrainConfig; None here means "not given"


def _opt(help_text: str, flag: str | None = None):
    return typer.Option(flag, help=help_text) if flag else typer.Option(help=help_text)


@train_app.callback()
def train_cmd(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Option("--name", help="Checkpoint name (cache/checkpoints/NAME) or folder.")
    ] = None,
    model: Annotated[str | None, _opt("Variant (toto-lens variants).")] = UNSET,
    data: Annotated[
        str | None,
        _opt(
            "Source or mix: moving-digits, or moving-digits=0.8,image-digits=0.2. Weights that do not sum "
            "to 1 are normalised, with a note."
        ),
    ] = UNSET,
    tokenizer: Annotated[str | None, _opt("Tokenizer name (kmeans-512, random-4096) or folder.")] = UNSET,
    steps: Annotated[int | None, _opt("Optimizer steps.")] = UNSET,
    batch_size: Annotated[int | None, _opt("Clips per step, over all processes.")] = UNSET,
    micro_batch: Annotated[
        int | None, _opt("Clips per forward pass and process (gradient accumulation).")
    ] = UNSET,
    lr: Annotated[float | None, _opt("Peak learning rate.")] = UNSET,
    warmup: Annotated[int | None, _opt("Linear warmup steps.")] = UNSET,
    min_lr_ratio: Annotated[float | None, _opt("Cosine floor as a fraction of the peak.")] = UNSET,
    weight_decay: Annotated[float | None, _opt("AdamW weight decay.")] = UNSET,
    grad_clip: Annotated[float | None, _opt("Gradient-norm clip.")] = UNSET,
    dtype: Annotated[str | None, _opt("Autocast dtype: float32 or bfloat16.")] = UNSET,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the model.")] = False,
    mup: Annotated[bool, typer.Option("--mup", help="μP: init, per-group LRs, 1/d attention.")] = False,
    base_width: Annotated[int | None, _opt("μP base width (default: the model's width).")] = UNSET,
    width: Annotated[int | None, _opt("Override the variant's width (FFN = 4·width).")] = UNSET,
    fsdp: Annotated[
        bool,
        typer.Option(
            "--fsdp",
            help="Shard with FSDP under torchrun instead of DDP. Checkpoints are then sharded: every rank "
            "writes its shards (torch.distributed.checkpoint) into NAME.dcp/ every --ckpt-every steps, and "
            "the full checkpoint NAME/ that other commands read is written at the end.",
        ),
    ] = False,
    no_dcp: Annotated[
        bool,
        typer.Option(
            "--no-dcp", help="With --fsdp: no sharded checkpoints; gather every one into a full one."
        ),
    ] = False,
    full_ckpt_every: Annotated[
        int | None,
        _opt("With --fsdp: also write the full checkpoint every N steps (default: at the end only)."),
    ] = UNSET,
    activation_checkpointing: Annotated[
        bool,
        typer.Option(
            "--activation-checkpointing",
            help="Recompute each block's activations in the backward pass: less memory for one more "
            "forward pass of the blocks a step; the same weights.",
        ),
    ] = False,
    seed: Annotated[int | None, _opt("Seed of the init and the batch order.")] = UNSET,
    train_clips: Annotated[int | None, _opt("Clips per source in the training pool.")] = UNSET,
    val_clips: Annotated[int | None, _opt("Clips per source for validation.")] = UNSET,
    eval_every: Annotated[int | None, _opt("Validate every N steps.")] = UNSET,
    log_every: Annotated[int | None, _opt("Log every N steps.")] = UNSET,
    ckpt_every: Annotated[int | None, _opt("Checkpoint every N steps.")] = UNSET,
    snapshot_every: Annotated[
        int | None,
        _opt(
            "Also keep the weights every N steps as checkpoints of their own, NAME-step0 (the start), "
            "NAME-stepN …, which every command reads (--ckpt NAME-stepN)."
        ),
    ] = UNSET,
    threads: Annotated[int | None, _opt("torch threads.")] = UNSET,
    stop_at: Annotated[int | None, _opt("Stop after this step (resumable), e.g. to split a run.")] = UNSET,
    device: Annotated[
        str | None, _opt("cpu, cuda, cuda:1 … (default: this process's GPU, else cpu).")
    ] = UNSET,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Start over even if NAME exists.")] = False,
    trust_code: TrustOpt = False,
) -> None:
    """Train a Toto checkpoint, or resume NAME if an unfinished run of the same settings is there.

    Every option is checked before the tokenizer is fitted. Ctrl-C keeps the last checkpoint; the same
    command (without --overwrite) resumes from it. Under `torchrun --nproc_per_node=K` the same command
    trains with DDP (gloo on CPU, nccl on GPU), or with --fsdp shards the model, gradients, optimizer
    and checkpoints (NAME.dcp/) over the processes; resuming reads the newer of NAME.dcp/ and NAME/.
    """
    if ctx.invoked_subcommand is not None:
        return
    if name is None:
        raise typer.BadParameter("name the run: --name NAME", param_hint="--name")
    from toto_lens.cli.progress import CliProgress
    from toto_lens.train.check import check_run
    from toto_lens.train.config import TrainConfig

    fields = TrainConfig.__dataclass_fields__
    given = {k: v for k, v in locals().items() if k in fields and v is not None and v is not False}
    if no_dcp:
        given["dcp"] = False
    cfg = TrainConfig(**given)
    check_run(cfg, name, trust_code=trust_code)  # at once, before torch is imported or anything fitted
    from toto_lens.train import train

    rank0 = int(os.environ.get("RANK", "0")) == 0
    report = console.print if rank0 else None
    on_interrupt(interrupt_note(cfg, name, overwrite))  # before the first checkpoint
    with CliProgress(console) as bar:  # bars on a terminal; in a log, lines, and train's own step lines
        try:
            result = train(cfg, name, overwrite=overwrite, stop_at=stop_at, device=device, report=report,
                           progress=bar, log_steps=not bar.live, trust_code=trust_code)  # fmt: skip
        except KeyboardInterrupt:
            on_interrupt(interrupt_note(cfg, name, overwrite))  # what the folder holds now
            raise
    if rank0:
        console.print(summary_table(cfg, result))
    if cfg.fsdp and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        _leave_without_finalizers()


def interrupt_note(cfg, name: str, overwrite: bool) -> str:
    """What Ctrl-C leaves: the last checkpoint of this run (step, path) and how to resume it."""
    from toto_lens.checkpoints import checkpoint_path
    from toto_lens.train.state import latest_saved

    folder = checkpoint_path(name)
    again = "run the same command again" + (" without --overwrite" if overwrite else "")
    training, where = latest_saved(folder) or ({}, folder)
    # the trainer's own rule: settings that do not change the run (log_every …) may differ on resume
    same_run = bool(training.get("config")) and not cfg.resumable_with(
        type(cfg).from_dict(training["config"])
    )
    if not training or not same_run or training.get("complete"):
        return f"no checkpoint of this run was saved yet (the first comes at step {cfg.ckpt_every}); {again} to start"
    kind = "sharded checkpoint" if where != folder else "checkpoint"
    return f"kept the {kind} of step {training['step']} of {cfg.steps} in {where}; {again} to resume from it"


def _leave_without_finalizers() -> None:
    """End the process now. Under FSDP on gloo a C++ destructor can abort the interpreter's exit, after
    the run is done and saved ("terminate called without an active exception", SIGABRT; seen in about
    1 of 10 two-process CPU runs, never with DDP), and torchrun then reports the run as failed."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _frame_rows(m: dict) -> list[tuple[str, str]]:
    """First frame against the later ones (the appendix's Fig. 10), for each source of the mix."""
    rows = []
    for name, r in (m.get("by_source") or {"all": m}).items():
        text = (
            f"{r['first_frame_loss']:.4f} / {r['later_frames_loss']:.4f} = {r['first_to_later_ratio']:.2f}×"
        )
        rows.append((f"first / later frames, {name}", text))
    return rows


def summary_table(cfg, result) -> Table:
    m = result.metrics
    table = Table(
        title=f"{'finished' if result.complete else 'stopped'}: {result.path}",
        box=box.SIMPLE_HEAD,
        show_header=False,
    )
    table.add_column(style="bold")
    table.add_column()
    last = result.log[-1] if result.log else {}
    rows = [
        ("model", f"{cfg.model}{' (μP)' if cfg.mup else ''}, tokenizer {cfg.tokenizer}, data {cfg.data}"),
        ("steps", f"{result.step} of {cfg.steps} ({last.get('tokens', 0):,} tokens)"),
        ("train loss", f"{last.get('train_loss', float('nan')):.4f} (last logged window)"),
    ]
    if "val_loss" in m:
        ent = m["unigram_entropy"]
        rows += [
            ("val loss", f"{m['val_loss']:.4f} nats; visual tokens {m['val_loss_visual']:.4f}"),
            ("unigram entropy", f"{ent:.4f} nats (val loss is {m['val_loss_visual'] / ent:.0%} of it)"),
            ("loss per frame", " ".join(f"{v:.3f}" for v in m["loss_per_frame"])),
            *_frame_rows(m),
        ]
    if result.log:
        rows.append(("speed", f"{result.log[-1]['tokens_per_s']:,.0f} tokens/s (last window)"))
    for k, v in rows:
        table.add_row(k, v)
    return table


@train_app.command("sweep-lr")
def sweep_lr_cmd(
    widths: Annotated[list[int], typer.Option("--widths", help="Model widths, e.g. --widths 64 128 256.")],
    lrs: Annotated[list[float], typer.Option("--lrs", help="Learning rates, e.g. --lrs 1e-3 3e-3 1e-2.")],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="The figure (.html, numbers beside as .nc), the numbers (.nc or .zarr, figure beside), or "
            "the μP table (.csv, as before; the control's beside as NAME-standard.csv, figure as .html).",
        ),
    ],
    model: Annotated[str, typer.Option(help="Variant giving depth and heads.")] = "toto-tiny",
    steps: Annotated[int, typer.Option(help="Steps per run.")] = 200,
    batch_size: Annotated[int, typer.Option(help="Clips per step.")] = 8,
    mup: Annotated[
        bool, typer.Option("--mup/--no-mup", help="μP (the point of the sweep) or standard only.")
    ] = True,
    control: Annotated[
        bool,
        typer.Option("--control/--no-control", help="Also sweep the standard parametrization (the control)."),
    ] = True,
    base_width: Annotated[
        int | None, typer.Option(help="μP base width (default: the smallest width).")
    ] = None,
    name: Annotated[
        str, typer.Option(help="Sweep name: runs in <cache>/sweeps/NAME-mup/ and NAME-standard/.")
    ] = "lr-sweep",
    eval_every: Annotated[
        int | None, typer.Option(help="Validate every N steps (default: once, at the end).")
    ] = None,
    train_clips: Annotated[int, typer.Option(help="Clips per source in the pool.")] = 1024,
    val_clips: Annotated[int, typer.Option(help="Clips per source for validation.")] = 64,
    tokenizer: Annotated[str, typer.Option(help="Tokenizer name or folder.")] = "kmeans-512",
    data: Annotated[str, typer.Option(help="Source or mix.")] = "moving-digits=0.8,image-digits=0.2",
    seed: Annotated[int, typer.Option(help="Seed of every run.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Train every (width, lr) pair under μP and the standard control; best lr per width (Fig. 11).

    Finished pairs are read back: the same command resumes an interrupted sweep.
    """
    from toto_lens import studies
    from toto_lens.cli.progress import CliProgress
    from toto_lens.studies.base import output_paths

    table = out if out.suffix.lower() == ".csv" else None
    page = out.with_suffix(".html") if table else out
    output_paths(page)
    with CliProgress(console, quiet=as_json) as bar:
        study = studies.lr_sweep(
            widths, lrs, model=model, steps=steps, batch_size=batch_size, base_width=base_width,
            control=control, mup=mup, name=name, csv=table, eval_every=eval_every, tokenizer=tokenizer,
            data=data, train_clips=train_clips, val_clips=val_clips, seed=seed, progress=bar,
        )  # fmt: skip
    tables = {f"{p} table": Path(t) for p, t in study.result.attrs["tables"].items()}
    show(study, page, as_json, also=tables)
