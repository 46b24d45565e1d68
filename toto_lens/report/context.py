"""What every section of the report is handed and returns: the family's models, and its output.

`Context` carries the family, each size's checkpoints and caches, the progress callback and the numbers
of sections already computed (tables read them). A section's `compute(ctx)` returns an `Output`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from toto_lens.progress import Progress
from toto_lens.report import claims
from toto_lens.report.family import Family


@dataclass
class Model:
    """One size of the family, once trained: its checkpoint outputs and those of its untrained copy."""

    label: str
    trained: dict[str, Any]
    untrained: dict[str, Any]
    caches: dict[str, Any] = field(default_factory=dict)  # extract outputs, by checkpoint then kind


@dataclass
class Context:
    family: Family
    models: list[Model]
    progress: Progress | None
    numbers: dict[str, dict[str, Any]] = field(default_factory=dict)  # other sections', for tables

    @property
    def largest(self) -> Model:
        return max(self.models, key=lambda m: m.trained["params"])


@dataclass
class Output:
    numbers: dict[str, Any]
    figures: list[Any] = field(default_factory=list)
    tables: list[dict[str, Any]] = field(default_factory=list)  # {title, columns, rows}


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    claim: str  # the paper's words (appendix)
    verdict: Callable[[dict[str, Any]], claims.Verdict]
    compute: Callable[[Context], Output]
    settings: tuple[str, ...] = ()  # family settings the numbers depend on
    needs: tuple[str, ...] = ()  # sections whose numbers it reads
    models: bool = True  # reads the family's checkpoints
    version: int = 1  # raised when what the section computes changes, so that kept results are redone


def table(summary: Any) -> dict[str, Any]:
    """A study's `Summary` as a report table."""
    return {"title": summary.title, "columns": summary.columns, "rows": summary.rows,
            "notes": summary.notes, "caption": summary.caption}  # fmt: skip
