"""`toto-lens attention`: one query token's attention over the earlier frames, and every head's reach.

Parses its options, calls `toto_lens.studies.attention`, saves the study where --out says (numbers .nc,
figures .html beside each other) and prints its summary (or one JSON object with --json).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from toto_lens.cli.app import CacheOpt, DatasetOpt, JsonOpt, OutOpt, TrustOpt, app, console, show


@app.command()
def attention(
    out: OutOpt,
    ckpt: Annotated[
        str | None,
        typer.Option("--ckpt", help="Checkpoint name or folder; default: the one --cache was made with."),
    ] = None,
    cache: CacheOpt = None,
    dataset: DatasetOpt = None,
    clip: Annotated[int, typer.Option("--clip", help="Clip of the cache (its index in the source).")] = 0,
    layer: Annotated[
        int | None,
        typer.Option(
            "--layer", min=1, help="Layer l: the attention of block l − 1; default: the middle block."
        ),
    ] = None,
    head: Annotated[int, typer.Option("--head", min=0, help="Attention head.")] = 0,
    query: Annotated[
        str | None,
        typer.Option("--query", help="Query token as FRAME,ROW,COL; default: the last frame's centre."),
    ] = None,
    as_json: JsonOpt = False,
    trust_code: TrustOpt = False,
) -> None:
    """Attention of one query token drawn over the earlier frames, and per-head distances and masses."""
    from toto_lens import studies
    from toto_lens.cli.progress import CliProgress
    from toto_lens.studies.base import output_paths

    output_paths(out)
    with CliProgress(console, quiet=as_json) as bar:
        study = studies.attention(
            ckpt, cache=cache, dataset=dataset, clip=clip, layer=layer, head=head, query=query, progress=bar,
            trust_code=trust_code,
        )  # fmt: skip
    show(study, Path(out), as_json)
