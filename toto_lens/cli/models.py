"""Commands about models and checkpoints: variants, init, info, checkpoints."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from toto_lens.cli.app import CkptOpt, JsonOpt, TrustOpt, app, console


def _human(n: int) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.4g}{unit}"
    return str(n)


@app.command()
def variants(as_json: JsonOpt = False) -> None:
    """List the named model variants: width, heads, layers, FFN width, vocabulary, context, parameters."""
    from toto_lens.config import variant_table

    rows = variant_table()
    if as_json:
        print(json.dumps(rows))
        return
    table = Table(title="Toto variants", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("name", "width", "heads", "layers", "FFN width", "vocab", "context", "params", "paper"):
        table.add_column(col, justify="left" if col == "name" else "right", no_wrap=True)
    for r in rows:
        paper = r["paper_params"]
        vs = "" if paper is None else f"{_human(paper)} ({r['params'] / paper - 1:+.0%})"
        cells = (str(r[k]) for k in ("width", "heads", "layers", "ffn", "vocab", "context"))
        table.add_row(r["name"], *cells, _human(r["params"]), vs)
    console.print(table)


@app.command()
def info(ckpt: CkptOpt, as_json: JsonOpt = False, trust_code: TrustOpt = False) -> None:
    """Describe a checkpoint: config, parameter count, layers, vocabulary, tokenizer, data, sha256."""
    from toto_lens.checkpoints import describe, load_checkpoint

    summary = describe(load_checkpoint(ckpt, trust_code=trust_code))
    if as_json:
        print(json.dumps(summary))
        return
    table = Table(title=f"checkpoint {summary['name']}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for key in ("path", "sha256", "params", "n_layers", "vocab_size", "created", "toto_lens_version"):
        value = summary[key]
        table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
    for key, value in summary["config"].items():
        table.add_row(f"config.{key}", str(value))
    table.add_row("tokenizer", summary["tokenizer_summary"])
    table.add_row("data", str(summary["data"] or "none recorded (extract needs --data)"))
    table.add_row("tokenizer spec", json.dumps(summary["tokenizer"]))
    for key, value in _flat(summary["training"], "training"):
        table.add_row(key, value)
    console.print(table)


def _flat(value: Any, prefix: str):
    """(dotted key, short text) rows of nested metadata; floats to 4 significant digits."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _flat(v, f"{prefix}.{k}")
    elif isinstance(value, list) and all(isinstance(v, float) for v in value):
        yield prefix, " ".join(f"{v:.4g}" for v in value)
    else:
        yield prefix, f"{value:.4g}" if isinstance(value, float) else str(value)


@app.command("checkpoints")
def list_ckpts(as_json: JsonOpt = False) -> None:
    """List the named checkpoints in the registry (cache/checkpoints/, or $TOTO_LENS_CACHE/checkpoints/)."""
    from toto_lens.checkpoints import checkpoints_dir, list_checkpoints

    names = list_checkpoints()
    if as_json:
        print(json.dumps({"root": str(checkpoints_dir()), "checkpoints": names}))
        return
    if not names:
        console.print(
            f"no checkpoints in {checkpoints_dir()}; make one with `toto-lens init --model toto-tiny --name NAME`"
        )
    for name in names:
        print(name)


@app.command()
def init(
    name: Annotated[str, typer.Option("--name", help="Checkpoint name in the registry, or a folder path.")],
    model: Annotated[
        str | None, typer.Option("--model", help="Variant name (see `toto-lens variants`).")
    ] = None,
    like: Annotated[
        str | None,
        typer.Option(
            "--like",
            help="A checkpoint to mirror: its exact config, tokenizer and training data, fresh weights.",
        ),
    ] = None,
    tokenizer: Annotated[
        str | None,
        typer.Option(
            help="Tokenizer to record (name or folder; `none` for none). Default: a random codebook with "
            "the variant's codes whose clips fill its context (random-8192-p2 for the paper's variants).",
        ),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(help="Data to record as the model's (`none` for none). Default: the trainer's mix."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the initial weights.")] = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing checkpoint.")] = False,
    trust_code: TrustOpt = False,
) -> None:
    """Write an untrained (freshly initialised) checkpoint: the baseline every probing curve needs.

    `--model` records a tokenizer and data that fit the variant, so `toto-lens extract --ckpt NAME` runs
    as written. `--like demo` makes the baseline of a trained run: the same model config (vocabulary
    sized to its tokenizer, context, μP), the same tokenizer and the data it was trained on, so `extract`
    and the analyses treat both alike (`toto-lens induction --ckpt demo-init --ckpt demo`).
    """
    from toto_lens.checkpoints import describe, init_checkpoint, load_checkpoint
    from toto_lens.cli.progress import CliProgress

    if (model is None) == (like is None):
        raise typer.BadParameter(
            "give either --model VARIANT or --like CHECKPOINT", param_hint="--model/--like"
        )
    with CliProgress(console) as bar:
        path = init_checkpoint(name, model=model, like=like, seed=seed, overwrite=overwrite,
                               tokenizer=tokenizer, data=data, trust_code=trust_code, progress=bar)  # fmt: skip
    info = describe(load_checkpoint(path, trust_code=trust_code))
    mirror = f", like {like}" if like else ""
    console.print(
        f"wrote {path} ({info['config']['name']}, {info['params']:,} parameters, untrained{mirror})\n"
        f"tokenizer: {info['tokenizer_summary']}\ndata: {info['data'] or 'none recorded'}",
        soft_wrap=True,
    )
