"""`studies.ngrams`: how tokenizers differ in their n-gram statistics (appendix A.9, Figs. 12-13)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from toto_lens.progress import Progress, report, say
from toto_lens.studies.base import Study, StudyError, Summary, command_line, provenance


def ngrams(
    tokenizers: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    n: int | Sequence[int] = (1, 2, 3),
    frames: int = 10_000,
    data: str = "image-digits",
    split: str = "val",
    progress: Progress | None = None,
    trust_code: bool = False,
) -> Study:
    """Tokenize `frames` frames of a source with each tokenizer and count raster-order n-grams inside
    each frame: rank-frequency curves, distinct n-grams against V^n, entropy and dead codes. Token
    shards (`tokens:PATH`) are counted as they are, with the one tokenizer that made them."""
    from toto_lens.analysis.ngrams import compare_ngram_stats, ngram_stats
    from toto_lens.data import open_source, stack_frames
    from toto_lens.data.sources.tokens import check_tokenizer_match
    from toto_lens.figures.ngrams import ngram_rank_figure, ngram_summary_figure
    from toto_lens.tokenizers import load_tokenizer

    ns = sorted({int(k) for k in ([n] if isinstance(n, int) else n)})
    if not ns or ns[0] < 1:
        raise StudyError(f"n-gram lengths must be positive, got {ns}")
    if frames < 16:
        raise StudyError(f"--frames must be at least 16, got {frames}")
    items = [tokenizers] if isinstance(tokenizers, str | os.PathLike) else list(tokenizers)
    if not items:
        raise StudyError("name at least one tokenizer (--tokenizer)")
    # A bad source or split fails before any tokenizer is fitted (a named one is fitted on first use).
    source = open_source(data, split=split, n_clips=-(-frames // 16))
    # every name checked before any frame is drawn
    toks = [load_tokenizer(t, trust_code=trust_code) for t in items]
    for tok, name in zip(toks, items, strict=True):  # before tokenizing thousands of frames
        rows, cols = tok.grid
        if ns[-1] > rows * cols:
            raise StudyError(
                f"--n {ns[-1]}: n-grams are counted inside one frame, and {tok.name or name} makes "
                f"{rows * cols} tokens a frame ({rows}×{cols}); use n ≤ {rows * cols}"
            )
    tokenized = getattr(source, "tokenized", False)
    for tok in toks if tokenized else ():  # shards' codes mean something only to their own tokenizer
        check_tokenizer_match(source, tok)
    if tokenized:
        codes = np.concatenate([source[i].codes for i in range(len(source))])[:frames]  # (N, rows, cols)
    else:
        images = stack_frames(source)[:frames]
    stats = []
    for i, (tok, name) in enumerate(zip(toks, items, strict=True)):
        label = tok.name or str(name)
        count = len(codes) if tokenized else len(images)
        say(progress, "ngrams", f"{label}: tokenizing {count:,} frames, then counting n = {ns}")
        ids = codes if tokenized else tok.encode(images)
        stats.append(ngram_stats(ids, tok.vocab_size, ns=ns, name=label, progress=progress))
        report(progress, "ngrams", i + 1, len(toks), "tokenizers")
    combined = compare_ngram_stats(stats) if len(stats) > 1 else stats[0]
    combined.attrs.update(provenance("ngrams", None, n=ns, frames=count, data=source.name, split=split))
    combined.attrs["tokenizers"] = [s.attrs["name"] for s in stats]
    combined.attrs["command"] = command_line(
        "ngrams", "--tokenizer", [str(t) for t in items], "--n", ns, "--frames", frames, "--data", data,
        "--split", split, "--trust-code", trust_code,
    )  # fmt: skip
    figures = [ngram_rank_figure(combined, n=k) for k in ns] + [ngram_summary_figure(combined)]
    summary = ngram_summary(stats, ns, count, source.name, split)
    return Study("ngrams", combined, figures, summary, title=f"Token n-gram statistics: {summary.title}")


def ngram_summary(stats: list[Any], ns: list[int], frames: int, source: str, split: str) -> Summary:
    rows = [
        {
            "tokenizer": s.attrs["name"], "n": int(k), "distinct": int(s["distinct"].sel(n=k)),
            "possible": float(s["possible"].sel(n=k)), "coverage": float(s["coverage"].sel(n=k)),
            "entropy_bits": float(s["entropy"].sel(n=k)), "dead_codes": int(s["dead_codes"]),
        }
        for s in stats for k in ns
    ]  # fmt: skip
    table = [
        [r["tokenizer"], str(r["n"]), f"{r['distinct']:,}", f"{r['possible']:.3g}", f"{r['coverage']:.2e}",
         f"{r['entropy_bits']:.2f}", str(r["dead_codes"])]
        for r in rows
    ]  # fmt: skip
    return Summary(
        title=f"n-grams over {frames:,} frames of {source} ({split})",
        columns=["tokenizer", "n", "distinct", "of V^n", "coverage", "entropy (bits)", "dead codes"],
        rows=table,
        data={"frames": frames, "rows": rows},
    )
