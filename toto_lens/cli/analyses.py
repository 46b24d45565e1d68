"""Commands that answer one question each and write its figure and numbers: `toto-lens redundancy`,
`toto-lens induction`, `toto-lens ngrams` (`toto-lens probe` has its own module).

Each parses its options, calls one `toto_lens.studies` function, saves the study where --out says
(numbers .nc, figure .html beside each other) and prints its summary (or one JSON object with --json).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from toto_lens.cli.app import (
    CacheOpt,
    CkptOpt,
    DataOpt,
    DatasetOpt,
    JsonOpt,
    OutOpt,
    SplitOpt,
    TrustOpt,
    app,
    console,
    show,
)


@app.command()
def redundancy(
    ckpt: CkptOpt,
    out: OutOpt,
    dataset: DatasetOpt = None,
    cache: CacheOpt = None,
    kind: Annotated[
        str | None, typer.Option("--kind", help="Only video or images clips; default: every clip.")
    ] = None,
    fit: Annotated[
        str, typer.Option("--fit", help="Baselines fitted on half the clips (half) or in-sample (all).")
    ] = "half",
    as_json: JsonOpt = False,
) -> None:
    """Loss per frame and per position (appendix A.3, Fig. 10) beside copy, unigram and bigram baselines."""
    from toto_lens import studies
    from toto_lens.studies.base import output_paths

    output_paths(out)
    show(studies.redundancy(ckpt, cache=cache, dataset=dataset, kind=kind, fit=fit), Path(out), as_json)


@app.command()
def induction(
    ckpt: Annotated[
        list[str],
        typer.Option("--ckpt", help="Checkpoint name or folder; repeat to follow heads across training."),
    ],
    out: OutOpt,
    n: Annotated[
        int | None,
        typer.Option("--n", min=2, help="Length of the repeated random sequence (default: 1.5 frames)."),
    ] = None,
    batch: Annotated[
        int, typer.Option("--batch", min=1, help="Random sequences (and cache clips) to average.")
    ] = 8,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random tokens.")] = 0,
    dataset: DatasetOpt = None,
    threshold: Annotated[float, typer.Option("--threshold", help="Score that marks a head.")] = 0.4,
    as_json: JsonOpt = False,
    trust_code: TrustOpt = False,
) -> None:
    """Induction (prefix matching), repeated-clip, previous-frame and previous-row heads per layer and head."""
    from toto_lens import studies
    from toto_lens.cli.progress import CliProgress
    from toto_lens.studies.base import output_paths

    output_paths(out)
    with CliProgress(console, quiet=as_json) as bar:
        study = studies.induction(
            ckpt, n=n, batch=batch, seed=seed, dataset=dataset, threshold=threshold, progress=bar,
            trust_code=trust_code,
        )  # fmt: skip
    show(study, Path(out), as_json)


@app.command()
def ngrams(
    tokenizer: Annotated[
        list[str],
        typer.Option("--tokenizer", help="Tokenizer name (kmeans-512, random-32768) or folder; repeat."),
    ],
    out: OutOpt,
    n: Annotated[list[int], typer.Option("--n", help="n-gram lengths, e.g. --n 1 2 3.")] = [1, 2, 3],  # noqa: B006
    frames: Annotated[
        int, typer.Option("--frames", min=16, help="Frames to tokenize (paper: 10,000).")
    ] = 10_000,
    data: DataOpt = "image-digits",
    split: SplitOpt = "val",
    as_json: JsonOpt = False,
    trust_code: TrustOpt = False,
) -> None:
    """n-gram statistics of tokenizers (appendix A.9): rank-frequency curves, entropy, coverage, dead codes."""
    from toto_lens import studies
    from toto_lens.cli.progress import CliProgress
    from toto_lens.studies.base import output_paths

    output_paths(out)
    with CliProgress(console, quiet=as_json) as bar:
        study = studies.ngrams(
            tokenizer, n=n, frames=frames, data=data, split=split, progress=bar, trust_code=trust_code
        )
    show(study, Path(out), as_json)
