"""Progress of long work, as one callback the library calls and each front end draws its own way.

Long-running library functions (`extract`, `train`, `studies.*`, tokenizer fitting) take
`progress: Progress | None` and call it with a `ProgressEvent` whenever a unit of work is done. They
never print a bar themselves: the CLI draws a rich bar on a terminal and a log line every ~10 % otherwise
(`toto_lens.cli.progress`), a notebook passes `tqdm_progress()` (one tqdm.auto bar per task, which
renders as a widget in JupyterLab), a script passes `print` through `line_progress(print)`, and None
keeps quiet. Under torchrun only rank 0 is handed a callback.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ProgressEvent:
    """`done` of `total` units of `task` finished; `info` holds task-specific numbers (rate, loss, …)."""

    task: str  # what is being done: "extract", "train", "probe digit/linear", …
    done: int
    total: int | None = None  # None when the amount of work is not known in advance
    unit: str = ""  # "clips", "steps", "fits"
    info: dict[str, Any] = field(default_factory=dict)
    message: str = ""  # a sentence to show once (what is starting, where it writes), not a step of work

    @property
    def fraction(self) -> float | None:
        return None if not self.total else min(1.0, self.done / self.total)

    def line(self) -> str:
        """One log line: `extract: 32/512 clips (6%), rate 12.3, …`, or `extract: <message>`."""
        if self.message:
            return f"{self.task}: {self.message}"
        count = f"{self.done}/{self.total}" if self.total else str(self.done)
        share = f" ({self.fraction:.0%})" if self.fraction is not None else ""
        extra = "".join(f", {k} {_short(v)}" for k, v in self.info.items())
        return f"{self.task}: {count} {self.unit}{share}{extra}".replace("  ", " ")


Progress = Callable[[ProgressEvent], None]


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def report(progress: Progress | None, task: str, done: int, total: int | None, unit: str = "", **info: Any):
    """Call `progress` when there is one: the one line long-running code writes per unit of work."""
    if progress is not None:
        progress(ProgressEvent(task, int(done), None if total is None else int(total), unit, info))


def say(progress: Progress | None, task: str, message: str) -> None:
    """Tell `progress` a sentence about `task` (what starts, on what, writing where), shown once."""
    if progress is not None:
        progress(ProgressEvent(task, 0, None, "", {}, message))


def line_progress(write: Callable[[str], None] = print, every: float = 0.1) -> Progress:
    """A callback that writes `event.line()` when a task has moved by `every` of its total (and at its end)."""
    next_at: dict[str, float] = {}

    def callback(event: ProgressEvent) -> None:
        if event.message:
            write(event.line())
            return
        fraction = event.fraction
        if fraction is None or fraction >= next_at.get(event.task, 0.0) or event.done == event.total:
            write(event.line())
            next_at[event.task] = (fraction or 0.0) + every

    return callback


def tqdm_progress(**bar_options: Any) -> Progress:
    """A callback that keeps one `tqdm.auto` bar per task: a widget in JupyterLab, text elsewhere."""
    from tqdm.auto import tqdm

    bars: dict[str, Any] = {}

    def callback(event: ProgressEvent) -> None:
        if event.message:
            tqdm.write(event.line())
            return
        bar = bars.get(event.task)
        if bar is None:
            bar = bars[event.task] = tqdm(
                total=event.total, desc=event.task, unit=f" {event.unit}".rstrip(), **bar_options
            )
        bar.update(event.done - bar.n)
        if event.info:
            bar.set_postfix({k: _short(v) for k, v in event.info.items()}, refresh=False)
        if event.total is not None and event.done >= event.total:
            bar.close()

    return callback
