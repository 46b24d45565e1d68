"""Commands about clips: `toto-lens data preview`, `toto-lens data materialise`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from toto_lens.cli.app import DataOpt, SplitOpt, TrustOpt, app, console

data_app = typer.Typer(
    help="Look at clips of any source, store them, tokenize them into shards.", no_args_is_help=True
)
app.add_typer(data_app, name="data")

SeedOpt = Annotated[
    int, typer.Option("--seed", help="Dataset seed: clip i of (seed, split) is always the same.")
]


@data_app.command("preview")
def preview(
    out: Annotated[Path, typer.Option("--out", help="File to write: .png, .gif (animated) or .html.")],
    n: Annotated[int, typer.Option("--n", min=1, help="Number of clips.")] = 8,
    data: DataOpt = "moving-digits",
    split: SplitOpt = "val",
    seed: SeedOpt = 0,
    trust_code: TrustOpt = False,
) -> None:
    """Draw clips with their labels (and object masks where the source has them); token shards are
    decoded with the tokenizer stored beside them."""
    from toto_lens.data import check_source, open_source
    from toto_lens.errors import ConfigError
    from toto_lens.figures.clips import PREVIEW_SUFFIXES, write_preview
    from toto_lens.io import check_writable
    from toto_lens.studies.base import command_line

    if out.suffix.lower() not in PREVIEW_SUFFIXES:
        raise ConfigError(f"--out {out}: a preview is written as .png, .gif or .html")
    check_source(data)
    check_writable(out, "--out")  # before any clip is rendered
    source = open_source(data, split=split, n_clips=n, seed=seed)
    clips = [source[i] for i in range(min(n, len(source)))]
    if any(c.frames is None for c in clips):
        from toto_lens.tokenizers import load_tokenizer_dir

        tok = load_tokenizer_dir(source.folder, trust_code=trust_code)
        for c in clips:
            c.frames = tok.decode(c.codes)
    again = command_line(
        "data preview", "--n", n, "--data", data, "--split", split, "--seed", seed, "--out", out
    )
    written = write_preview(clips, out, command=again)
    console.print(f"wrote {written} ({len(clips)} clips of {source.name}, {source.split})")


@data_app.command("materialise")
def materialise_cmd(
    out: Annotated[Path, typer.Option("--out", help="Folder to write (clips.safetensors + clips.json).")],
    clips: Annotated[int, typer.Option("--clips", min=1, help="Number of clips.")] = 1024,
    data: DataOpt = "moving-digits",
    split: SplitOpt = "train",
    seed: SeedOpt = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing folder.")] = False,
) -> None:
    """Generate clips once and store them, so that later runs read instead of render."""
    from toto_lens.data import check_source, materialise, open_source
    from toto_lens.errors import ConfigError
    from toto_lens.io import check_writable

    check_source(data)
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} already exists; pass --overwrite to replace it")
    check_writable(out, "--out")  # before any clip is rendered
    source = open_source(data, split=split, n_clips=clips, seed=seed)
    path = materialise(source, out, overwrite=overwrite)
    console.print(f"wrote {path} ({len(source)} clips of {source.name}, {source.split}, seed {seed})")


@data_app.command("tokenize")
def tokenize_cmd(
    out: Annotated[
        Path, typer.Option("--out", help="Folder of the shards; the split is written into OUT/SPLIT.")
    ],
    tokenizer: Annotated[
        str,
        typer.Option("--tokenizer", help="Tokenizer name (kmeans-512 …), tokenizer folder, or checkpoint."),
    ],
    clips: Annotated[int, typer.Option("--clips", min=1, help="Number of clips.")] = 1024,
    data: DataOpt = "moving-digits",
    split: SplitOpt = "train",
    seed: SeedOpt = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing shards.")] = False,
    trust_code: TrustOpt = False,
) -> None:
    """Tokenize clips once into memory-mapped shards (`--data tokens:OUT` reads them back): training and
    extraction then skip decoding and tokenizing. An interrupted run continues where it stopped."""
    from toto_lens.cli.progress import CliProgress
    from toto_lens.data import check_source, open_source
    from toto_lens.data.sources.tokens import write_token_shards
    from toto_lens.io import check_writable
    from toto_lens.tokenizers import load_tokenizer
    from toto_lens.tokenizers.named import check_tokenizer

    check_source(data)
    check_tokenizer(tokenizer, trust_code=trust_code)
    check_writable(out, "--out")  # all before a clip is read or a tokenizer fitted
    source = open_source(data, split=split, n_clips=clips, seed=seed)
    with CliProgress(console) as bar:
        tok = load_tokenizer(tokenizer, trust_code=trust_code, progress=bar)
        path = write_token_shards(source, tok, out, overwrite=overwrite, progress=bar)
    console.print(
        f"wrote {path} ({len(source)} clips of {source.name}, {split}); read them with --data tokens:{out}"
    )
