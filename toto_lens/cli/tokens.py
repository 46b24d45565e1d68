"""Commands about tokenizers: `toto-lens tokenizer fit` (n-gram statistics are `toto-lens ngrams`)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from toto_lens.cli.app import JsonOpt, TrustOpt, app, console

tokenizer_app = typer.Typer(help="Fit and inspect visual tokenizers.", no_args_is_help=True)
app.add_typer(tokenizer_app, name="tokenizer")


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
    data: Annotated[
        str | None,
        typer.Option(
            "--data", help="Fit on this source's train clips (e.g. image-folder:PATH, colour or grey)."
        ),
    ] = None,
    clips: Annotated[int, typer.Option("--clips", min=1, help="Train clips of --data to fit on.")] = 256,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing folder.")] = False,
    as_json: JsonOpt = False,
    trust_code: TrustOpt = False,
) -> None:
    """Fit a tokenizer on the bundled train frames, or on a source's (--data); print its reconstruction
    error and codebook usage on the validation frames.

    Every option is checked before the fit starts; the fit shows its progress (k-means seeding, code by
    code, then Lloyd's iterations)."""
    from toto_lens.cli.progress import CliProgress
    from toto_lens.tokenizers.named import fit_and_save

    with CliProgress(console, quiet=as_json) as bar:
        report = fit_and_save(kind, vocab, out, patch=patch, seed=seed, start=start, data=data, clips=clips, overwrite=overwrite,
                              trust_code=trust_code, progress=bar)  # fmt: skip
    if as_json:
        print(json.dumps(report))
        return
    console.print(
        f"wrote {report['path']}: {report['kind']} with {report['vocab_size']} codes, fitted in {report['fit_seconds']:.1f} s\n"
        f"val reconstruction: MSE {report['mse']:.5f} ({report['psnr_db']:.1f} dB PSNR) on {report['frames']} frames; "
        f"codebook usage {report['codebook_usage']:.1%} ({report['dead_codes']} dead codes)"
    )
