"""`toto-lens probe`: layer probing curves from an activation cache (Toto appendix Fig. 9)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from toto_lens.cli.app import CacheOpt, DatasetOpt, JsonOpt, OutOpt, app, console, show


@app.command()
def probe(
    out: OutOpt,
    ckpt: Annotated[
        list[str] | None,
        typer.Option(
            "--ckpt",
            help="Checkpoint name or folder; repeat to draw several (e.g. the model and its untrained copy "
            "from `toto-lens init --like`).",
        ),
    ] = None,
    dataset: DatasetOpt = None,
    cache: CacheOpt = None,
    task: Annotated[
        str | None,
        typer.Option(
            "--task",
            help="Tasks, comma-separated: digit, motion, position, velocity, frame_digit, or a class label of "
            "the cache (label, frame_label …). Default: digit,motion, or the cache's own labels.",
        ),
    ] = None,
    probe_kind: Annotated[
        str, typer.Option("--probe", help="Probes, comma-separated: linear, attention, attention-mlp.")
    ] = "linear",
    seeds: Annotated[
        list[int], typer.Option("--seeds", help="Number of seeds (3 → 0,1,2), or the seeds: --seeds 5 6 7.")
    ] = [3],  # noqa: B006
    layers: Annotated[
        str, typer.Option("--layers", help="all (the cache's layers), or a spec like 0,4,8, 2:6, mid, -1.")
    ] = "all",
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Attention probes: training epochs.")] = 10,
    as_json: JsonOpt = False,
) -> None:
    """Probe every layer of an activation cache: one curve per task and probe, scored on held-out clips."""
    from toto_lens import studies
    from toto_lens.cli.progress import CliProgress
    from toto_lens.studies.base import output_paths

    output_paths(out)  # a bad suffix or an unwritable place fails before any fitting
    with CliProgress(console, quiet=as_json) as bar:
        study = studies.probing(
            (ckpt[0] if len(ckpt) == 1 else ckpt) if ckpt else None, cache=cache, dataset=dataset, tasks=task, probes=probe_kind, seeds=seeds, layers=layers,
            epochs=epochs, progress=bar,
        )  # fmt: skip
    show(study, Path(out), as_json)
