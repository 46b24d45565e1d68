"""Commands that move weights between toto-lens and Hugging Face Llama folders: export, import."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from toto_lens.cli.app import CkptOpt, TrustOpt, app, console


def _id_option(what: str, llama_field: str | None, default: int) -> typer.models.OptionInfo:
    read = f"config.json's {llama_field}, else {default}" if llama_field else str(default)
    return typer.Option(help=f"Token id of {what} (default: {read}).")


@app.command()
def export(
    ckpt: CkptOpt,
    out: Annotated[Path, typer.Option("--out", help="Folder to write (config.json + model.safetensors).")],
    fmt: Annotated[str, typer.Option("--format", help="Output layout; `hf` (Hugging Face Llama).")] = "hf",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing folder.")] = False,
    trust_code: TrustOpt = False,
) -> None:
    """Write a checkpoint as a Hugging Face LlamaForCausalLM folder (μP folded into the weights).

    `transformers.LlamaForCausalLM.from_pretrained(OUT)` then computes the checkpoint's logits.
    """
    from toto_lens.convert import export_checkpoint

    path = export_checkpoint(ckpt, out, fmt=fmt, overwrite=overwrite, trust_code=trust_code)
    console.print(f"wrote {path} (Hugging Face LlamaForCausalLM: config.json, model.safetensors)")


@app.command("import")
def import_(
    hf: Annotated[Path, typer.Option("--hf", help="Hugging Face Llama folder (config.json + safetensors).")],
    name: Annotated[str, typer.Option("--name", help="Checkpoint name in the registry, or a folder path.")],
    tokenizer: Annotated[
        str | None,
        typer.Option(
            "--tokenizer",
            help="Tokenizer to save with the checkpoint: a name, a folder, or a spec file (*.json, e.g. "
            '{"kind": "external", "factory": "pkg.mod:load", ...}; needs --trust-code).',
        ),
    ] = None,
    layout: Annotated[
        str | None, typer.Option("--layout", help="Clip layout FRAMES,ROWS,COLS, e.g. 16,16,16.")
    ] = None,
    start_video: Annotated[int | None, _id_option("a video's start", "bos_token_id", 1)] = None,
    start_image: Annotated[int | None, _id_option("an image sequence's start", None, 3)] = None,
    end: Annotated[int | None, _id_option("a sequence's end", "eos_token_id", 2)] = None,
    pad: Annotated[int | None, _id_option("padding", "pad_token_id", 0)] = None,
    code_offset: Annotated[
        int | None,
        typer.Option(help="Token id of visual code 0 (default: right after the special ids)."),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing checkpoint.")] = False,
    trust_code: TrustOpt = False,
) -> None:
    """Save a Hugging Face LlamaForCausalLM folder (one model.safetensors or shards) as a checkpoint."""
    from toto_lens.convert import import_hf

    specials = {"video_start_id": start_video, "image_start_id": start_image, "end_id": end, "pad_id": pad}
    path = import_hf(
        hf,
        name,
        tokenizer=tokenizer,
        layout=layout,
        specials=specials,
        first_code_id=code_offset,
        overwrite=overwrite,
        trust_code=trust_code,
    )
    console.print(f"wrote {path} (imported from {hf})")
