"""Resumable steps of a report: each writes a record of what it made from what, and is skipped next time.

A step has an id (`train/large`, `fig9`), inputs (settings and the digests of what it reads: a
checkpoint's sha256, a store's manifest) and a function. Its record, `<report>/steps/<id>.json`, holds
the key (a hash of the inputs), the seconds it took and its output (JSON numbers; a section's figures
lie beside it as `<id>.figure-<i>.json`). A step whose record has the same key, and whose product still
exists, is not run again; an interrupted report therefore resumes at the step it was in. Records are
written atomically, so a killed run never leaves half a record.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toto_lens.io import atomic_file
from toto_lens.progress import Progress, say


@dataclass
class Record:
    id: str
    key: str
    seconds: float
    output: dict[str, Any]
    ran: bool  # False when read back from an earlier run


class Steps:
    """The step records of one report folder, with progress lines that name each step and its time."""

    def __init__(self, folder: Path, progress: Progress | None, estimates: dict[str, float] | None = None,
                 total: int = 0) -> None:  # fmt: skip
        self.folder = folder / "steps"
        self.progress = progress
        self.estimates = estimates or {}
        self.total, self.done = total, 0
        self.started = time.perf_counter()

    def path(self, step: str) -> Path:
        return self.folder / (step.replace("/", "--") + ".json")

    def read(self, step: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.path(step).read_text())
        except (OSError, ValueError):
            return None

    def key(self, inputs: dict[str, Any]) -> str:
        return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:20]

    def run(
        self,
        step: str,
        inputs: dict[str, Any],
        fn: Callable[[], dict[str, Any]],
        *,
        what: str,
        exists: Callable[[], bool] | None = None,
        force: bool = False,
    ) -> Record:
        """The step's record: read back when its key matches (and `exists()`), else `fn()` run and kept."""
        key = self.key(inputs)
        old = self.read(step)
        self.done += 1
        count = f"[{self.done}/{self.total}]" if self.total else f"[{self.done}]"
        if old and old.get("key") == key and not force and (exists is None or exists()):
            say(self.progress, "report", f"{count} {step}: unchanged since its last run, kept ({what})")
            return Record(step, key, float(old.get("seconds", 0.0)), old.get("output", {}), ran=False)
        guess = (
            (old or {}).get("seconds") or self.estimates.get(step) or self.estimates.get(step.split("/")[0])
        )
        eta = f", about {_duration(guess)}" if guess else ""
        say(self.progress, "report", f"{count} {step}: {what}{eta} ({_duration(self.elapsed)} so far)")
        start = time.perf_counter()
        output = fn()
        seconds = time.perf_counter() - start
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_file(self.path(step)) as tmp:
            tmp.write_text(json.dumps({"id": step, "key": key, "inputs": inputs, "seconds": seconds,
                                       "output": output}, indent=1, default=str))  # fmt: skip
        return Record(step, key, seconds, output, ran=True)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def figure_paths(self, step: str) -> list[Path]:
        stem = step.replace("/", "--")
        return sorted(self.folder.glob(f"{stem}.figure-*.json"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))

    def write_figures(self, step: str, figures: list[Any]) -> None:
        """A section's figures as plotly JSON beside its record (old ones removed first)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for old in self.figure_paths(step):
            old.unlink()
        stem = step.replace("/", "--")
        for i, fig in enumerate(figures):
            with atomic_file(self.folder / f"{stem}.figure-{i}.json") as tmp:
                tmp.write_text(fig.to_json())

    def read_figures(self, step: str) -> list[Any]:
        import plotly.io as pio

        return [pio.from_json(p.read_text(), skip_invalid=True) for p in self.figure_paths(step)]


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"
