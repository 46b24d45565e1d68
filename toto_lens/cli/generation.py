"""`toto-lens generate`: clips sampled from a checkpoint, decoded to frames, with their quality.

Parses its options, calls `toto_lens.studies.generation` and writes into --out DIR: the numbers
(`generation.nc`) and figures (`generation.html`: real clips above generated ones, quality per frame), the
generated ids (`tokens.npy`, (clips, positions), the whole sequence from the start token) and an animated
GIF (`clips.gif`); then prints the summary (or one JSON object with --json).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from toto_lens.cli.app import CacheOpt, DatasetOpt, JsonOpt, TrustOpt, app, console, show


@app.command()
def generate(
    out: Annotated[Path, typer.Option("--out", help="Folder for the numbers, figures, ids and GIF.")],
    ckpt: Annotated[
        str | None, typer.Option("--ckpt", help="Checkpoint name or folder; its cache gives real clips.")
    ] = None,
    cache: CacheOpt = None,
    dataset: DatasetOpt = None,
    start: Annotated[
        str, typer.Option("--start", help="video ([1]) or image ([3]): the start token.")
    ] = "video",
    prompt_frames: Annotated[
        int, typer.Option("--prompt-frames", help="Real frames given (0: the start token alone).")
    ] = 1,
    clips: Annotated[
        int, typer.Option("--clips", help="Clips to generate (the cache's first ones give prompts).")
    ] = 8,
    frames: Annotated[
        int | None, typer.Option("--frames", help="Frames in all (default: the model's).")
    ] = None,
    temperature: Annotated[float, typer.Option("--temperature", help="0 = greedy.")] = 1.0,
    top_k: Annotated[int | None, typer.Option("--top-k", help="Sample among the k likeliest codes.")] = None,
    top_p: Annotated[
        float | None, typer.Option("--top-p", help="Nucleus: the likeliest codes up to mass p.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Sampling seed.")] = 0,
    layer: Annotated[
        int | None, typer.Option("--layer", help="Layer of the Fréchet features (default: middle).")
    ] = None,
    as_json: JsonOpt = False,
    trust_code: TrustOpt = False,
) -> None:
    """Sample clips with the KV cache, decode them, and score them against the truth and copy-last."""
    import numpy as np

    from toto_lens import studies
    from toto_lens.cli.progress import CliProgress
    from toto_lens.figures.generation import write_gif
    from toto_lens.io import atomic_file, check_writable
    from toto_lens.studies.base import output_paths

    output_paths(out / "generation.nc")
    check_writable(out / "tokens.npy", what="--out")
    with CliProgress(console, quiet=as_json) as bar:
        study = studies.generation(
            ckpt, cache=cache, dataset=dataset, start=start, prompt_frames=prompt_frames, clips=clips,
            frames=frames, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed, layer=layer,
            progress=bar, trust_code=trust_code,
        )  # fmt: skip
    with atomic_file(out / "tokens.npy") as tmp, open(tmp, "wb") as f:
        np.save(f, study.result["tokens"].values.astype(np.int64))
    gif = write_gif(study.result, out / "clips.gif")
    show(study, out / "generation.nc", as_json, also={"tokens": out / "tokens.npy", "gif": gif})
