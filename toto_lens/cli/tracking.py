"""`toto-lens track`: label propagation through the clips of a cache, per layer, scored with J&F.

Parses its options, calls `toto_lens.studies.track`, saves the study where --out says (numbers .nc,
figures .html beside each other) and prints its summary (or one JSON object with --json).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from toto_lens.cli.app import CacheOpt, DatasetOpt, JsonOpt, OutOpt, app, console, show


@app.command()
def track(
    out: OutOpt,
    ckpt: Annotated[
        str | None, typer.Option("--ckpt", help="Checkpoint name or folder; its cache gives the features.")
    ] = None,
    cache: CacheOpt = None,
    dataset: DatasetOpt = None,
    layers: Annotated[
        str, typer.Option("--layers", help="Layers to track with: all, or e.g. 0,2,-1.")
    ] = "all",
    clips: Annotated[int, typer.Option("--clips", help="Clips to track (the first complete ones).")] = 64,
    topk: Annotated[int, typer.Option("--topk", help="Sources kept per target token.")] = 5,
    context: Annotated[int, typer.Option("--context", help="Previous frames beside the first.")] = 7,
    radius: Annotated[int, typer.Option("--radius", help="Neighbourhood in previous frames, tokens.")] = 2,
    temperature: Annotated[float, typer.Option("--temperature", help="Affinity softmax temperature.")] = 0.1,
    show_clips: Annotated[int, typer.Option("--show", help="Clips whose masks the figure shows.")] = 4,
    no_pixels: Annotated[
        bool, typer.Option("--no-pixels", help="Leave out the raw-pixels baseline.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """J&F of each layer's label propagation (DAVIS 2017), beside copy-first and raw-pixel baselines."""
    from toto_lens import studies
    from toto_lens.cli.progress import CliProgress
    from toto_lens.studies.base import output_paths

    output_paths(out)
    with CliProgress(console, quiet=as_json) as bar:
        study = studies.track(
            ckpt, cache=cache, dataset=dataset, layers=layers, clips=clips, topk=topk, context=context,
            radius=radius, temperature=temperature, show=show_clips, pixels=not no_pixels, progress=bar,
        )  # fmt: skip
    show(study, Path(out), as_json)
