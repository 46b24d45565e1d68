"""`toto-lens extract …`: a checkpoint's activations, losses and attention summaries into the zarr cache."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from toto_lens.cli.app import CkptOpt, TrustOpt, app, console, on_interrupt
from toto_lens.errors import ConfigError
from toto_lens.io import human_bytes


def _names(text: str, what: str) -> tuple[str, ...]:
    if text.strip().lower() in ("", "none"):
        return ()
    return tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))


@app.command("extract")
def extract_cmd(
    ckpt: CkptOpt,
    layers: Annotated[str, typer.Option(help="all, mid, 0,4,8, 2:10:2 or -1 (0 = embeddings).")] = "all",
    data: Annotated[
        str | None, typer.Option(help="Source name or clip folder (default: the checkpoint's first source).")
    ] = None,
    split: Annotated[str, typer.Option(help="Split of the source: train, val or test.")] = "val",
    clips: Annotated[int | None, typer.Option(help="Clips to extract (default 512).")] = None,
    batch_size: Annotated[int, typer.Option(help="Clips per forward pass and per chunk.")] = 16,
    out: Annotated[
        str | None, typer.Option(help="Store path (default cache/<ckpt>/<source>-<split>.zarr).")
    ] = None,
    acts: Annotated[
        str, typer.Option(help="Activations: any of pooled,frame,token, or none.")
    ] = "pooled,frame",
    token_clips: Annotated[
        int | None, typer.Option(help="Per-token activations for the first N clips only (default all).")
    ] = None,
    attn: Annotated[str, typer.Option(help="Attention: any of frame,pattern, or none.")] = "none",
    pattern_clips: Annotated[int, typer.Option(help="Full attention patterns for the first N clips.")] = 4,
    dtype: Annotated[str, typer.Option(help="Storage dtype of activations: float16 or float32.")] = "float16",
    autocast: Annotated[
        str, typer.Option(help="Compute dtype of the forward pass: float32, bfloat16 (GPUs) or float16.")
    ] = "float32",
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1 … (default: GPU if any).")] = None,
    tokenizer: Annotated[
        str | None, typer.Option(help="Tokenizer, when the checkpoint records none.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would be written and its size; write nothing.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a store written from other weights or settings.")
    ] = False,
    trust_code: TrustOpt = False,
) -> None:
    """Extract activations, per-token losses and attention summaries into a resumable zarr store.

    Run the same command again after an interruption to continue where it stopped; it also extracts
    again the batches whose chunk files are missing (after `toto-lens verify --repair`, those of corrupt
    chunks too). Under
    `torchrun --nproc_per_node=K` each process extracts its own batches into the same store.
    """
    from toto_lens.cli.progress import CliProgress
    from toto_lens.run import ExtractPlan, extract

    if batch_size <= 0:
        raise ConfigError(f"--batch-size must be positive, got {batch_size}")
    kwargs = dict(
        data=data, split=split, clips=clips, batch_size=batch_size, out=out, layers=layers,
        acts=_names(acts, "acts"), token_clips=token_clips, attn=_names(attn, "attn"),
        pattern_clips=pattern_clips, dtype=dtype, autocast=autocast, device=device, tokenizer=tokenizer,
        overwrite=overwrite, dry_run=dry_run, trust_code=trust_code,
    )  # fmt: skip
    with CliProgress(console) as bar:
        result = extract(ckpt, progress=bar, note=on_interrupt, **kwargs)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    if isinstance(result, ExtractPlan):
        console.print(f"dry run, nothing written; {result.path} would hold:", soft_wrap=True)
        console.print(plan_table(result))
        return
    verb = "complete" if result.complete else "incomplete (run the same command again)"
    skipped = f", {result.batches_skipped} already there" if result.batches_skipped else ""
    console.print(
        f"{result.path}: {result.clips} clips, {human_bytes(result.bytes)}, {verb}; "
        f"{result.batches_run} batches written in {result.seconds:.1f} s{skipped}",
        soft_wrap=True,
    )


def plan_table(plan) -> Table:
    table = Table(box=box.SIMPLE_HEAD)
    for col in ("variable", "dims", "shape", "dtype", "size"):
        table.add_column(col, justify="right" if col == "size" else "left")
    sizes = plan.sizes()
    for spec in plan.variables:
        table.add_row(
            spec.name, ", ".join(spec.dims), "×".join(map(str, spec.shape(plan.shape))), spec.dtype,
            human_bytes(sizes[spec.name]),
        )  # fmt: skip
    table.add_section()
    table.add_row("total", f"{plan.shape.clip} clips, layers {list(plan.shape.layers)}", "", "",
                  human_bytes(sum(sizes.values())))  # fmt: skip
    table.caption = "sizes before compression; unwritten parts (token_clips, pattern_clips) take no disk"
    return table
