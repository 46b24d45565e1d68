"""The appendix report: one command that trains (or reuses) a model family, runs every study and writes
`report/index.html`, each appendix figure beside the paper's claim and whether it holds on our models.

    from toto_lens.report import build_report
    report = build_report("smoke", "report-smoke")   # families: smoke, cpu, paper, or a .toml of your own
    report.page                                      # report-smoke/index.html

Floors: this package calls `studies`, `train`, `run` and `figures`; only the CLI imports it.
"""

from toto_lens.report.build import Report, build_report, section_ids
from toto_lens.report.family import Family, family_names, load_family

__all__ = ["Family", "Report", "build_report", "family_names", "load_family", "section_ids"]
