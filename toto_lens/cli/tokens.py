"""Commands about tokens: `toto-lens tokenizer fit`, `toto-lens ngrams`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from toto_lens.cli.app import JsonOpt, app, console

tokenizer_app = typer.Typer(help="Fit and inspect visual tokenizers.", no_args_is_help=True)
app.add_typer(tokenizer_app, name="tokenizer")

REPORT_CLIPS = 64  # val clips (videos and image sequences alike) that reports are measured on


def _report_frames():
    from toto_lens.tokenizers import bundled_frames

    return bundled_frames("val", REPORT_CLIPS, REPORT_CLIPS // 4)


@tokenizer_app.command("fit")
def fit(
    kind: Annotated[str, typer.Option("--kind", help="kmeans (patch k-means) or random (random codebook).")],
    vocab: Annotated[int, typer.Option("--vocab", help="Number of codes.")],
    out: Annotated[
        str, typer.Option("--out", help="Folder to write, or a bare name for cache/tokenizers/NAME.")
    ],
    patch: Annotated[
        int, typer.Option("--patch", help="Patch size in pixels (32×32 frames, 4 → 8×8 grid).")
    ] = 4,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the fit and of the random codebook.")] = 0,
    start: Annotated[
        str | None,
        typer.Option("--from", help="random only: reuse this tokenizer's projection, change its vocabulary."),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing folder.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Fit a tokenizer on the bundled train frames; print its reconstruction error and codebook usage."""
    from toto_lens.paths import is_bare_name
    from toto_lens.tokenizers import (
        RandomCodebook,
        TokenizerError,
        fit_tokenizer,
        load_tokenizer,
        save_tokenizer,
    )
    from toto_lens.tokenizers.named import tokenizer_report, tokenizers_dir

    folder = tokenizers_dir() / out if is_bare_name(out) else Path(out)
    if folder.exists() and not overwrite:  # checked before fitting, which can take a while
        raise TokenizerError(f"{folder} already exists; pass --overwrite to replace it")
    t0 = time.perf_counter()
    if start is not None:
        base = load_tokenizer(start)
        if kind != "random" or not isinstance(base, RandomCodebook):
            raise TokenizerError(
                "--from changes the vocabulary of a random codebook; use it with --kind random"
            )
        tok = base.with_vocab(vocab, seed=seed, name=folder.name)
    else:
        tok = fit_tokenizer(kind, vocab, patch=patch, seed=seed, name=folder.name)
    seconds = time.perf_counter() - t0
    save_tokenizer(tok, folder, overwrite=overwrite)
    report = {
        **tokenizer_report(tok, _report_frames()),
        "fit_seconds": round(seconds, 2),
        "path": str(folder),
    }
    if as_json:
        print(json.dumps(report))
        return
    console.print(
        f"wrote {folder}: {report['kind']} with {report['vocab_size']} codes, fitted in {seconds:.1f} s\n"
        f"val reconstruction: MSE {report['mse']:.5f} ({report['psnr_db']:.1f} dB PSNR) on {report['frames']} frames; "
        f"codebook usage {report['codebook_usage']:.1%} ({report['dead_codes']} dead codes)"
    )
