"""The appendix report on the smoke family, end to end: every section with its figure, verdict and PNGs;
a second run keeps everything; `--only` runs one section again.

One report is built per module (a few minutes on 2 cores): real training, extraction and studies.
"""

import json
import struct

import pytest
from helpers import run_cli

from toto_lens.report import build_report
from toto_lens.report import claims as claim_rules
from toto_lens.report.sections import SECTIONS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, _shared_derived):
    cache = tmp_path_factory.mktemp("report-cache")
    for sub in ("tokenizers", "tokens"):
        (cache / sub).symlink_to(_shared_derived / sub)
    out = tmp_path_factory.mktemp("report") / "smoke"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TOTO_LENS_CACHE", str(cache))
        report = build_report("smoke", out)
    return report, out, cache


def png_size(path):
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def test_every_section_has_a_verdict_that_its_numbers_give(smoke):
    report, out, _ = smoke
    assert not report.failed, [f"{s.id}: {s.verdict.reason}" for s in report.failed]
    numbers = json.loads((out / "numbers.json").read_text())["sections"]
    assert list(numbers) == [s.id for s in SECTIONS], "every section of the appendix list is in the report"
    for section in SECTIONS:
        recorded = numbers[section.id]
        again = section.verdict(recorded["numbers"])
        assert (recorded["verdict"], recorded["reason"]) == (again.status, again.reason), (
            f"{section.id}: the page's verdict is not what its own numbers give"
        )
        assert recorded["verdict"] in (
            claim_rules.HOLDS,
            claim_rules.PARTLY,
            claim_rules.FAILS,
            claim_rules.REPORTED,
        )


def test_the_page_shows_each_claim_with_its_figures_tables_and_pngs(smoke):
    report, out, _ = smoke
    page = (out / "index.html").read_text()
    for result in report.sections:
        assert f'id="{result.id}"' in page, f"section {result.id} missing from the page"
        assert result.figures or result.tables, f"{result.id} shows neither a figure nor a table"
        assert len(result.pngs) == len(result.figures), f"{result.id}: a PNG per figure"
        for png in result.pngs:
            width, height = png_size(png)
            assert width >= 600 and height >= 200, f"{png} is {width}×{height}: not a readable figure"
            assert f'src="{png.relative_to(out)}"' in page, f"{png.name} is not on the page"
    figures = sum(len(r.figures) for r in report.sections)
    assert page.count('class="plotly-graph-div"') == figures, "every figure is drawn on the page"
    assert page.count('<script type="text/javascript">/**') <= 1, "plotly.js is embedded once"


def test_a_second_run_keeps_every_step_and_only_reruns_one_section(smoke, capsys, monkeypatch):
    report, out, cache = smoke
    monkeypatch.setenv("TOTO_LENS_CACHE", str(cache))

    def records():
        steps = (out / "steps").glob("*.json")
        return {p.name: p.stat().st_mtime_ns for p in steps if ".figure-" not in p.name}

    before = records()
    code, stdout, err = run_cli(capsys, "figures", "--family", "smoke", "--out", str(out), "--only", "fig10",
                                "--no-png")  # fmt: skip
    assert code == 0, err
    after = records()
    changed = sorted(k for k in after if after[k] != before.get(k))
    assert changed == ["fig10.json"], f"--only fig10 must run fig10 alone again, ran {changed}"
    assert "unchanged since its last run" in stdout and "train/base" in stdout, stdout[-2000:]
    sections = json.loads((out / "numbers.json").read_text())["sections"]
    assert list(sections) == [s.id for s in SECTIONS], "the page still holds every section after --only"
