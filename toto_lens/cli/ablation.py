"""`toto-lens ablate`: silence chosen attention heads and compare the per-frame loss with random heads.

Parses its options, calls `toto_lens.studies.ablate`, saves the study where --out says (numbers .nc,
figure .html beside each other) and prints its summary (or one JSON object with --json).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from toto_lens.cli.app import CacheOpt, DatasetOpt, JsonOpt, OutOpt, TrustOpt, app, console, show


@app.command()
def ablate(
    out: OutOpt,
    ckpt: Annotated[
        str | None,
        typer.Option("--ckpt", help="Checkpoint name or folder; its cache gives the clips."),
    ] = None,
    cache: CacheOpt = None,
    dataset: DatasetOpt = None,
    heads: Annotated[
        str,
        typer.Option(
            "--heads",
            help="top:<score>:<k> (prev_frame, frame_induction, …) or layer.head list, e.g. 1.2,2.0.",
        ),
    ] = "top:frame_induction:2",
    mode: Annotated[str, typer.Option("--mode", help="zero, or mean (each head's mean output).")] = "zero",
    clips: Annotated[
        int, typer.Option("--clips", help="Clips of the cache to run (the first complete videos).")
    ] = 32,
    draws: Annotated[int, typer.Option("--draws", help="Draws of as many random heads, the control.")] = 5,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random draws.")] = 0,
    as_json: JsonOpt = False,
    trust_code: TrustOpt = False,
) -> None:
    """Per-frame loss with chosen heads ablated, beside the intact model and random heads ablated."""
    from toto_lens import studies
    from toto_lens.cli.progress import CliProgress
    from toto_lens.studies.base import StudyError, output_paths

    if clips <= 0:
        raise StudyError(f"--clips {clips}: head ablation needs at least one clip")
    if mode not in ("zero", "mean"):
        raise StudyError(f"--mode {mode}: choose zero or mean")
    output_paths(out)
    with CliProgress(console, quiet=as_json) as bar:
        study = studies.ablate(
            ckpt, cache=cache, dataset=dataset, heads=heads, mode=mode, clips=clips, random_draws=draws,
            seed=seed, progress=bar, trust_code=trust_code,
        )  # fmt: skip
    show(study, Path(out), as_json)
