"""`toto-lens figures`: the appendix report on a model family (`toto_lens.report.build_report`).

Parses its options, builds (or brings up to date) the report, prints each section's verdict and where
the page is. Ctrl-C keeps every finished step: the same command continues from the step it was in.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from toto_lens.cli.app import JsonOpt, app, console, on_interrupt


@app.command()
def figures(
    family: Annotated[
        str,
        typer.Option(
            "--family",
            help="smoke (minutes), cpu (under an hour on 2 cores), paper (GPUs), "
            "or a .toml of your own (FILE or FILE:NAME).",
        ),  # fmt: skip
    ] = "cpu",
    out: Annotated[
        Path, typer.Option("--out", help="Folder of the report (index.html, png/, steps/).")
    ] = Path("report"),
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Run these sections again (fig9, fig10, …; repeat or comma-separate)."),
    ] = None,
    no_png: Annotated[
        bool, typer.Option("--no-png", help="Skip the static PNGs (no browser needed).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """The appendix regenerated: train or reuse a model family, run every study, write report/index.html."""
    import json

    from toto_lens.cli.progress import CliProgress
    from toto_lens.report import build_report, load_family, section_ids

    fam = load_family(family)  # a bad family or --only fails before anything runs
    section_ids(only or [])
    on_interrupt(f"every finished step is kept in {out}/steps; run the same command again to continue")
    command = shlex.join(["toto-lens", "figures", *sys.argv[2:]]) if sys.argv[1:2] == ["figures"] else ""
    with CliProgress(console, quiet=as_json) as bar:
        report = build_report(fam, out, only=only or [], pngs=not no_png, progress=bar, command=command)
    rows = [{"section": s.id, "title": s.title, "verdict": s.verdict.status, "reason": s.verdict.reason,
             "seconds": round(s.seconds, 1)} for s in report.sections]  # fmt: skip
    if as_json:
        print(json.dumps({"page": str(report.page), "minutes": report.seconds / 60, "sections": rows}))
    else:
        from rich.table import Table

        table = Table(title=f"appendix report, family {fam.name}: {report.seconds / 60:.1f} min")
        for col in ("section", "verdict", "time", "why"):
            table.add_column(col, overflow="fold")
        for r in rows:
            table.add_row(r["title"], r["verdict"], f"{r['seconds']:.0f} s", r["reason"])
        console.print(table)
        console.print(f"wrote {report.page}", soft_wrap=True)
    if report.failed:
        raise typer.Exit(1)
