"""`build_report`: train (or reuse) a model family, run every study, write the appendix report.

Order: the family's checkpoints and caches (`models.py`), then the sections in `sections.SECTIONS` order,
then the PNGs and the page. Every step is resumable (`steps.py`): run again, only what changed runs;
`only=["fig9"]` runs that section again (and what it needs, if missing) and rewrites the page with every
section that has a result.
"""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toto_lens.errors import ConfigError, TotoLensError
from toto_lens.progress import Progress, say
from toto_lens.report.claims import Verdict
from toto_lens.report.context import Context, Model, Section
from toto_lens.report.family import Family, load_family
from toto_lens.report.page import SectionResult, write_page
from toto_lens.report.sections import BY_ID, SECTIONS
from toto_lens.report.steps import Steps

ALIASES = {"fig13": "fig12", "table14": "fig7", "induction": "a3"}


@dataclass
class Report:
    page: Path
    family: Family
    sections: list[SectionResult]
    seconds: float

    @property
    def failed(self) -> list[SectionResult]:
        return [s for s in self.sections if s.verdict.status == "failed"]


def section_ids(only: Sequence[str]) -> list[str]:
    """`--only` values (ids or aliases, comma lists allowed) → section ids; one line for an unknown one."""
    ids = []
    for word in (w.strip() for part in only for w in str(part).split(",")):
        if not word:
            continue
        sid = ALIASES.get(word, word)
        if sid not in BY_ID:
            raise ConfigError(
                f"--only {word!r}: choose from {', '.join(BY_ID)} (fig13 = fig12, table14 = fig7)"
            )
        ids.append(sid)
    return list(dict.fromkeys(ids))


def build_report(
    family: str | Family = "cpu",
    out: str | os.PathLike = "report",
    *,
    only: Sequence[str] = (),
    pngs: bool = True,
    progress: Progress | None = None,
    command: str = "",
) -> Report:
    """Make (or bring up to date) the report of `family` in `out`; see the module docstring."""
    from toto_lens import __version__
    from toto_lens.io import check_writable

    started = time.perf_counter()
    fam = family if isinstance(family, Family) else load_family(family)
    forced = section_ids(only)
    out = Path(out)
    check_writable(out / "index.html", "--out")
    chosen = _with_needs(forced) if forced else [s.id for s in SECTIONS]
    with_models = any(BY_ID[s].models for s in chosen)
    total = len(chosen) + (len(fam.sizes) * 6 if with_models else 0)
    steps = Steps(out, progress, _estimates(fam), total=total)
    say(progress, "report", f"family {fam.name}: {fam.description}; writing {out / 'index.html'}")
    models = _models(fam, steps, progress) if with_models else []
    ctx = Context(fam, models, progress)
    results = []
    for section in SECTIONS:
        if section.id not in chosen:
            kept = _kept(section, ctx if with_models or not section.models else None, steps)
            if kept:
                results.append(kept)
                ctx.numbers[section.id] = kept.numbers
            continue
        result = _run(section, ctx, steps, force=section.id in forced)
        results.append(result)
        if result.verdict.status != "failed":
            ctx.numbers[section.id] = result.numbers
    if pngs:
        _pngs(results, out, steps, progress)
    about = {
        "family": fam.name, "description": fam.description, "version": __version__,
        "sizes": ", ".join(f"{s.label} = {s.describe}" for s in fam.sizes),
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "minutes": (time.perf_counter() - started) / 60, "command": command or f"toto-lens figures --family {fam.name}",
    }  # fmt: skip
    page = write_page(out, results, about)
    return Report(page, fam, results, time.perf_counter() - started)


def _with_needs(ids: list[str]) -> list[str]:
    chosen = list(ids)
    for sid in ids:
        chosen += [n for n in BY_ID[sid].needs if n not in chosen]
    return chosen


def _estimates(fam: Family) -> dict[str, float]:
    return {k: float(v) for k, v in fam.estimates.items()}


def _models(fam: Family, steps: Steps, progress: Progress | None) -> list[Model]:
    from toto_lens.report.models import extract_caches, train_size, untrained

    models = []
    for size in fam.sizes:
        trained = train_size(fam, size, steps, progress)
        copy = untrained(fam, size, trained, steps)
        caches = {c["checkpoint"]: extract_caches(fam, c, steps, progress) for c in (trained, copy)}
        models.append(Model(size.label, trained, copy, caches))
    return models


def _inputs(section: Section, ctx: Context, steps: Steps) -> dict[str, Any]:
    fam = ctx.family
    inputs: dict[str, Any] = {"version": section.version, "settings": {k: fam[k] for k in section.settings}}
    if section.models:
        inputs["models"] = [[m.trained["sha256"], m.untrained["sha256"], m.caches] for m in ctx.models]
    if section.id == "fig11" or section.id == "fig12":
        inputs["data"] = [fam.tokenizer, fam.data]
    inputs["needs"] = {n: (steps.read(n) or {}).get("key") for n in section.needs}
    return inputs


def _run(section: Section, ctx: Context, steps: Steps, force: bool) -> SectionResult:
    def compute() -> dict[str, Any]:
        output = section.compute(ctx)
        steps.write_figures(section.id, output.figures)
        return {"numbers": output.numbers, "tables": output.tables}

    try:
        record = steps.run(
            section.id, _inputs(section, ctx, steps), compute, what=section.title, force=force,
            exists=lambda: (steps.path(section.id).exists()),
        )  # fmt: skip
    except TotoLensError as e:
        say(ctx.progress, "report", f"{section.id} failed: {e}")
        return SectionResult(
            section.id, section.title, section.claim, Verdict("failed", str(e)), {}, [], [], 0.0, True
        )
    return _result(section, record.output, steps.read_figures(section.id), record.seconds, record.ran)


def _result(
    section: Section, output: dict[str, Any], figures: list[Any], seconds: float, ran: bool
) -> SectionResult:
    numbers = output["numbers"]
    return SectionResult(section.id, section.title, section.claim, section.verdict(numbers), numbers, figures,
                         output["tables"], seconds, ran)  # fmt: skip


def _kept(section: Section, ctx: Context | None, steps: Steps) -> SectionResult | None:
    """A section not asked for (`--only` others): its last result, said to be stale when its inputs have
    changed since (or cannot be checked because the family's models were not loaded)."""
    old = steps.read(section.id)
    if not old:
        return None
    result = _result(section, old["output"], steps.read_figures(section.id), float(old["seconds"]), False)
    if ctx is None:
        result.note = "kept from an earlier run; not checked against the models in this run"
    elif old.get("key") != steps.key(_inputs(section, ctx, steps)):
        result.note = "stale: its inputs changed since it ran; run the report without --only to renew it"
    return result


def _pngs(results: list[SectionResult], out: Path, steps: Steps, progress: Progress | None) -> None:
    """PNGs of every figure, written again only for sections that ran (or whose PNG is missing)."""
    from toto_lens.figures.report import PngWriter

    folder = out / "png"
    folder.mkdir(parents=True, exist_ok=True)
    with PngWriter() as writer:
        if not writer.available:
            say(progress, "report", f"no PNGs: {writer.why}; the page shows the interactive figures only")
            return
        for r in results:
            paths = [folder / f"{r.id}-{i}.png" for i in range(len(r.figures))]
            for fig, path in zip(r.figures, paths, strict=True):
                if r.ran or not path.exists():
                    writer.write(fig, path)
            r.pngs = paths
