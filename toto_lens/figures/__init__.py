"""Figures: one plotly builder per appendix figure, from analysis results (xarray) to a plotly Figure.

The top floor of DESIGN.md's flow: builders take analysis results, never zarr stores or models, and
write nothing unless asked through `write_figure`. This package module imports neither plotly nor xarray
(STYLE.md: heavy imports happen where they are used); builders load on first use (PEP 562).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toto_lens._lazy import lazy_exports
from toto_lens.errors import TotoLensError
from toto_lens.io import atomic_file


class FigureError(TotoLensError, ValueError):
    """A figure that cannot be built or written from what it was given, said in one line."""


SUFFIXES = (".html", ".json")

_EXPORTS = {
    "ngram_rank_figure": "toto_lens.figures.ngrams",
    "ngram_summary_figure": "toto_lens.figures.ngrams",
    "probing_figure": "toto_lens.figures.probing",
    "redundancy_figure": "toto_lens.figures.redundancy",
    "induction_heatmap_figure": "toto_lens.figures.induction",
    "induction_emergence_figure": "toto_lens.figures.induction",
}

__all__ = ["SUFFIXES", "FigureError", "ngram_rank_figure", "ngram_summary_figure", "write_figure"]
__all__ += ["probing_figure"]
__all__ += ["induction_emergence_figure", "induction_heatmap_figure", "redundancy_figure"]

if TYPE_CHECKING:
    from toto_lens.figures.induction import induction_emergence_figure, induction_heatmap_figure
    from toto_lens.figures.ngrams import ngram_rank_figure, ngram_summary_figure
    from toto_lens.figures.probing import probing_figure
    from toto_lens.figures.redundancy import redundancy_figure


def write_figure(
    fig: Any,
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    source: str | None = None,
    command: str | None = None,
) -> Path:
    """Write a plotly figure, or a list of them, to `.html` (self-contained: plotly.js inlined) or `.json`.

    A list becomes one HTML page with the figures one under the other (plotly.js included once), or a
    JSON array. The page has a `<title>` (`title`, else the first figure's title) and, above the
    figures, a line saying what made it (`source`: data, checkpoint) and the command that writes it
    again (`command`). Returns the path.

    The HTML embeds plotly.js (~4.7 MB) instead of loading it from a CDN, so it opens on machines without
    network access. The file is written to a temporary name in the same folder and renamed over the
    target, so a reader never sees half a figure and an interrupted write leaves the old file intact.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in SUFFIXES:
        raise FigureError(
            f"cannot write a figure to {target.name!r}: supported suffixes are {', '.join(SUFFIXES)}"
        )
    figs = list(fig) if isinstance(fig, list | tuple) else [fig]
    if not figs:
        raise FigureError("no figures to write")
    if suffix == ".json":
        text = figs[0].to_json() if len(figs) == 1 else "[" + ",".join(f.to_json() for f in figs) + "]"
    else:
        divs = [f.to_html(include_plotlyjs=i == 0, full_html=False) for i, f in enumerate(figs)]
        text = html_page(divs, title or figure_title(figs[0]) or target.stem, source, command)
    with atomic_file(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return target


def figure_title(fig: Any) -> str:
    """A figure's title as plain text: its first line, tags removed (plotly titles may hold <sup>, …)."""
    import re

    text = re.split(r"<br\s*/?>", fig.layout.title.text or "")[0]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text)).strip()


def html_page(divs: list[str], title: str, source: str | None = None, command: str | None = None) -> str:
    """A whole HTML page around plotly `<div>`s: its title, what made it, how to make it again."""
    from html import escape

    about = []
    if source:
        about.append(f"<div>Made from: {escape(source)}</div>")
    if command:
        about.append(f"<div>Regenerate: <code>{escape(command)}</code></div>")
    header = (
        '<header style="font: 13px/1.5 sans-serif; color: #333; margin: 8px 16px">'
        f'<h1 style="font-size: 16px; margin: 0 0 4px">{escape(title)}</h1>{"".join(about)}</header>\n'
    )
    return (
        f'<!doctype html>\n<html>\n<head><meta charset="utf-8" />\n<title>{escape(title)}</title></head>\n'
        f"<body>\n{header}" + "\n".join(divs) + "\n</body>\n</html>\n"
    )


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
