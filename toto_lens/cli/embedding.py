"""`toto-lens embed`: a 2-D UMAP of each layer's representations, coloured by a label of the clips.

Parses its options, calls `toto_lens.studies.embed`, saves the study where --out says (numbers .nc,
figure .html beside each other) and prints its summary (or one JSON object with --json).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from toto_lens.cli.app import CacheOpt, DatasetOpt, JsonOpt, OutOpt, app, console, show


@app.command()
def embed(
    out: OutOpt,
    ckpt: Annotated[
        str | None, typer.Option("--ckpt", help="Checkpoint name or folder; its cache gives the activations.")
    ] = None,
    cache: CacheOpt = None,
    dataset: DatasetOpt = None,
    label: Annotated[str, typer.Option("--label", help="Clip label that colours the points.")] = "motion",
    source: Annotated[
        str, typer.Option("--source", help="pooled (a point per clip) or frame (per clip and frame).")
    ] = "pooled",
    layers: Annotated[str, typer.Option("--layers", help="Layers to embed: all, or e.g. 0,2,-1.")] = "all",
    n_neighbors: Annotated[int, typer.Option("--n-neighbors", help="UMAP and trustworthiness k.")] = 15,
    seed: Annotated[int, typer.Option("--seed", help="UMAP random state and subsampling seed.")] = 0,
    max_points: Annotated[int, typer.Option("--max-points", help="Most points embedded.")] = 2048,
    as_json: JsonOpt = False,
) -> None:
    """UMAP of each layer with trustworthiness and the label's kNN accuracy, beside shuffled controls."""
    from toto_lens import studies
    from toto_lens.cli.progress import CliProgress
    from toto_lens.studies.base import output_paths

    output_paths(out)
    with CliProgress(console, quiet=as_json) as bar:
        study = studies.embed(
            ckpt, cache=cache, dataset=dataset, label=label, source=source, layers=layers,
            n_neighbors=n_neighbors, seed=seed, max_points=max_points, progress=bar,
        )  # fmt: skip
    show(study, Path(out), as_json)
