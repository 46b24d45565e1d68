"""`toto-lens lens`: the logit lens, each layer's next-token prediction against the final one.

Parses its options, calls `toto_lens.studies.lens`, saves the study where --out says (numbers .nc,
figures .html beside each other) and prints its summary (or one JSON object with --json).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from toto_lens.cli.app import CacheOpt, DatasetOpt, JsonOpt, OutOpt, TrustOpt, app, console, show


@app.command()
def lens(
    out: OutOpt,
    ckpt: Annotated[
        str | None,
        typer.Option("--ckpt", help="Checkpoint name or folder; its cache gives the clips."),
    ] = None,
    cache: CacheOpt = None,
    dataset: DatasetOpt = None,
    clips: Annotated[
        int, typer.Option("--clips", help="Clips of the cache to run (the first complete ones).")
    ] = 32,
    clip: Annotated[int, typer.Option("--clip", help="Which of them to decode layer by layer.")] = 0,
    as_json: JsonOpt = False,
    trust_code: TrustOpt = False,
) -> None:
    """KL(final ‖ layer) and top-1 agreement of every layer's logit-lens prediction, per layer and frame."""
    from toto_lens import studies
    from toto_lens.cli.progress import CliProgress
    from toto_lens.studies.base import StudyError, output_paths

    if clips <= 0:
        raise StudyError(f"--clips {clips}: the logit lens needs at least one clip")
    output_paths(out)
    with CliProgress(console, quiet=as_json) as bar:
        study = studies.lens(
            ckpt, cache=cache, dataset=dataset, clips=clips, clip=clip, progress=bar, trust_code=trust_code
        )
    show(study, Path(out), as_json)
