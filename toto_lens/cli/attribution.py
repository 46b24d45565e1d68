"""`toto-lens attribute`: integrated gradients of a token's log-probability over the earlier tokens.

Parses its options, calls `toto_lens.studies.attribute`, saves the study where --out says (numbers .nc,
figure .html beside each other) and prints its summary (or one JSON object with --json).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from toto_lens.cli.app import CacheOpt, DatasetOpt, JsonOpt, OutOpt, TrustOpt, app, console, show

Place = Annotated[int | None, typer.Option(help="The target token's place (give --frame, --row and --col).")]


@app.command()
def attribute(
    out: OutOpt,
    ckpt: Annotated[
        str | None,
        typer.Option("--ckpt", help="Checkpoint name or folder; its cache gives the clips."),
    ] = None,
    cache: CacheOpt = None,
    dataset: DatasetOpt = None,
    clip: Annotated[
        int | None, typer.Option("--clip", help="The target's clip (of the complete ones); default 0.")
    ] = None,
    frame: Place = None,
    row: Place = None,
    col: Place = None,
    targets: Annotated[
        int, typer.Option("--targets", help="Random targets of frames ≥ 1, when no target is given.")
    ] = 16,
    steps: Annotated[int, typer.Option("--steps", help="Steps of the integrated-gradients integral.")] = 32,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random targets.")] = 0,
    as_json: JsonOpt = False,
    trust_code: TrustOpt = False,
) -> None:
    """Where the evidence for a token sits: attribution to the same frame, the previous frame (its same
    place), older frames and the start token, beside the share uniform mass would give."""
    from toto_lens import studies
    from toto_lens.cli.progress import CliProgress
    from toto_lens.studies.base import StudyError, output_paths

    place = (frame, row, col)
    if (clip is not None or any(v is not None for v in place)) and None in place:
        raise StudyError("give --frame, --row and --col together (with --clip), or none for random targets")
    if targets <= 0 or steps < 2:
        raise StudyError(f"--targets {targets} --steps {steps}: give at least 1 target and 2 steps")
    output_paths(out)
    with CliProgress(console, quiet=as_json) as bar:
        study = studies.attribute(
            ckpt, cache=cache, dataset=dataset, clip=clip or 0, frame=frame, row=row, col=col,
            targets=targets, n_steps=steps, seed=seed, progress=bar, trust_code=trust_code,
        )  # fmt: skip
    show(study, Path(out), as_json)
