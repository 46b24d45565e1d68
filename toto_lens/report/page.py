"""The report's page: `index.html` with every section's claim, verdict, figures and tables, PNGs beside it.

The page embeds plotly.js once (it opens offline) and shows each figure as a static PNG where JavaScript
is off (`<noscript>`); `numbers.json` holds every section's numbers and verdict for scripts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from toto_lens.io import atomic_file
from toto_lens.report.claims import FAILS, HOLDS, PARTLY, REPORTED, Verdict

COLOURS = {HOLDS: "#1b7837", PARTLY: "#b8860b", FAILS: "#b2182b", REPORTED: "#555", "failed": "#000"}
# Appendix items that no section regenerates, and why.
NOT_REGENERATED = [
    ("Fig. 8", "robot manipulation on a Franka arm: needs the robot and its episodes"),
    ("Table 13", "SD-VAE latents with random codebooks: needs SD-VAE weights, which cannot be downloaded here; "
     "the bundled random-codebook tokenizers appear in Figs. 12-13"),
    ("Table 15, A.5-A.6", "full fine-tuning on ImageNet with prefix attention: out of a probing toolkit's scope"),
]  # fmt: skip


@dataclass
class SectionResult:
    id: str
    title: str
    claim: str
    verdict: Verdict
    numbers: dict[str, Any]
    figures: list[Any]
    tables: list[dict[str, Any]]
    seconds: float
    ran: bool
    pngs: list[Path] = field(default_factory=list)
    note: str = ""  # how a section not run this time relates to its inputs (see build._kept)


def write_page(out: Path, results: list[SectionResult], about: dict[str, Any]) -> Path:
    """Write `out/index.html` and `out/numbers.json` (atomically); returns the page's path."""
    import plotly.offline

    rows = "".join(
        f'<tr><td><a href="#{r.id}">{escape(r.title)}</a></td><td>{_badge(r.verdict.status)}</td>'
        f"<td>{_time(r)}</td></tr>"
        for r in results
    )
    sections = "\n".join(_section(r, out) for r in results)
    missing = "".join(f"<li><b>{escape(a)}</b>: {escape(b)}</li>" for a, b in NOT_REGENERATED)
    head = (
        f"<h1>The Toto appendix, regenerated on the <code>{escape(about['family'])}</code> family</h1>"
        f"<p>{escape(about['description'])}. Sizes: {escape(about['sizes'])}. Made by toto-lens "
        f"{escape(about['version'])} on {escape(about['date'])} in {about['minutes']:.1f} min "
        f"(this run; sections kept from earlier runs count their own time). Again: <code>{escape(about['command'])}"
        "</code></p><p>Each section quotes the paper, shows our figure, and says whether the claim holds on our "
        "models; the rule behind each verdict is in its sentence, with the numbers it read.</p>"
    )  # fmt: skip
    page = (
        '<!doctype html>\n<html><head><meta charset="utf-8"><title>Toto appendix report: '
        f"{escape(about['family'])}</title><style>{STYLE}</style>\n"
        f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script></head>\n<body>{head}'
        f"<table class=summary><tr><th>section</th><th>verdict</th><th>time</th></tr>{rows}</table>"
        f"<p>Not regenerated:</p><ul>{missing}</ul>\n{sections}\n</body></html>\n"
    )
    page_path = out / "index.html"
    with atomic_file(page_path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    numbers = {
        "about": about,
        "sections": {r.id: {"title": r.title, "claim": r.claim, "verdict": r.verdict.status,
                            "reason": r.verdict.reason, "seconds": r.seconds, "numbers": r.numbers}
                     for r in results},
    }  # fmt: skip
    with atomic_file(out / "numbers.json") as tmp:
        tmp.write_text(json.dumps(numbers, indent=1, default=str))
    return page_path


def _section(r: SectionResult, out: Path) -> str:
    figures = []
    for i, fig in enumerate(r.figures):
        png = r.pngs[i] if i < len(r.pngs) else None
        still = (
            f'<noscript><img src="{png.relative_to(out)}" alt="{escape(r.title)}"></noscript>' if png else ""
        )
        figures.append(
            f"<div class=figure>{fig.to_html(include_plotlyjs=False, full_html=False)}{still}</div>"
        )
    tables = "".join(_table(t) for t in r.tables)
    return (
        f'<section id="{r.id}"><h2>{escape(r.title)}</h2><blockquote>{escape(r.claim)}</blockquote>'
        f"<p class=verdict>{_badge(r.verdict.status)} {escape(r.verdict.reason)}</p>{''.join(figures)}{tables}"
        f"<p class=time>{_time(r)}</p></section>"
    )


def _table(t: dict[str, Any]) -> str:
    head = "".join(f"<th>{escape(str(c))}</th>" for c in t["columns"])
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in t["rows"])
    notes = "".join(f"<p class=note>{escape(n)}</p>" for n in t.get("notes") or [])
    caption = f"<p class=note>{escape(t['caption'])}</p>" if t.get("caption") else ""
    return f"{notes}<table><caption>{escape(t['title'])}</caption><tr>{head}</tr>{body}</table>{caption}"


def _badge(status: str) -> str:
    return f'<span class=badge style="background:{COLOURS.get(status, "#555")}">{escape(status)}</span>'


def _time(r: SectionResult) -> str:
    took = f"{r.seconds:.0f} s" if r.seconds < 90 else f"{r.seconds / 60:.1f} min"
    if r.ran:
        return took
    return f"{took} ({escape(r.note or 'kept from an earlier run: inputs unchanged')})"


STYLE = """
body { font: 14px/1.5 sans-serif; max-width: 1100px; margin: 16px auto; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 18px; border-top: 1px solid #ccc; padding-top: 12px; }
blockquote { color: #444; font-style: italic; border-left: 3px solid #ccc; margin: 8px 0; padding-left: 10px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
td, th { border: 1px solid #ddd; padding: 2px 8px; text-align: left; }
caption { text-align: left; font-weight: bold; }
.badge { color: white; border-radius: 3px; padding: 1px 6px; font-weight: bold; }
.note, .time { color: #666; font-size: 12px; }
.figure img { max-width: 100%; }
"""
