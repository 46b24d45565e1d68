"""`toto-lens scaling`: validation loss against training compute over trained checkpoints (Fig. 14, A.8)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from toto_lens.cli.app import JsonOpt, OutOpt, app, console, show


@app.command()
def scaling(
    ckpt: Annotated[
        list[str],
        typer.Option("--ckpt", help="Trained checkpoint name or folder; repeat for every model of the fit."),
    ],
    out: OutOpt,
    as_json: JsonOpt = False,
) -> None:
    """Val loss against compute C = 6·N·D for each checkpoint's evaluations; a power law on the frontier."""
    from toto_lens import studies
    from toto_lens.cli.progress import CliProgress
    from toto_lens.studies.base import output_paths

    output_paths(out)
    with CliProgress(console, quiet=as_json) as bar:
        study = studies.scaling(ckpt, progress=bar)
    show(study, Path(out), as_json)
