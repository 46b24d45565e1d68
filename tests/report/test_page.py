"""The report page: every section with its claim, verdict, figures (a PNG where JavaScript is off) and
tables; numbers.json with the same verdicts; both written atomically."""

import json
from pathlib import Path

import plotly.graph_objects as go

from toto_lens.report.claims import HOLDS, Verdict
from toto_lens.report.page import SectionResult, write_page

ABOUT = {"family": "smoke", "description": "d", "version": "0", "sizes": "base = toto-debug", "date": "today",
         "minutes": 1.5, "command": "toto-lens figures --family smoke"}  # fmt: skip


def section(tmp_path: Path, sid: str, figures: int) -> SectionResult:
    figs = [
        go.Figure(go.Scatter(x=[0, 1], y=[i, i + 1]), layout={"title": f"{sid} {i}"}) for i in range(figures)
    ]
    pngs = [tmp_path / "png" / f"{sid}-{i}.png" for i in range(figures)]
    table = {"title": "t", "columns": ["a", "b"], "rows": [["<x>", "1"]]}
    return SectionResult(sid, f"Title {sid}", "the paper says <so>", Verdict(HOLDS, "because 3 > 2"), {"x": 3},
                         figs, [table], 12.0, ran=False, pngs=pngs)  # fmt: skip


def test_the_page_holds_every_section_its_pngs_and_escaped_text(tmp_path):
    results = [section(tmp_path, "fig9", 2), section(tmp_path, "table17", 0)]
    page = write_page(tmp_path, results, ABOUT).read_text()
    for r in results:
        assert f'<section id="{r.id}">' in page and f'href="#{r.id}"' in page, (
            f"{r.id} not on the page or its index"
        )
    assert page.count('class="plotly-graph-div"') == 2, "each figure drawn once"
    assert '<noscript><img src="png/fig9-0.png"' in page and "png/fig9-1.png" in page, "PNGs shown without JS"
    assert "&lt;so&gt;" in page and "&lt;x&gt;" in page and "<so>" not in page, "text from results is escaped"
    assert "kept from an earlier run" in page, "a section read back from its record says so"
    from plotly.offline import get_plotlyjs

    assert page.count(get_plotlyjs()[:500]) == 1, "plotly.js embedded once, inline (the page opens offline)"


def test_numbers_json_has_each_verdict_and_nothing_half_written(tmp_path):
    write_page(tmp_path, [section(tmp_path, "fig10", 1)], ABOUT)
    data = json.loads((tmp_path / "numbers.json").read_text())
    assert data["sections"]["fig10"] == {"title": "Title fig10", "claim": "the paper says <so>", "verdict": HOLDS,
                                         "reason": "because 3 > 2", "seconds": 12.0, "numbers": {"x": 3}}  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.html", "numbers.json"], (
        "no temporary files left"
    )
