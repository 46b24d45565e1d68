"""How the command line draws `toto_lens.progress` events: rich bars on a terminal, log lines otherwise.

A bar per task with its numbers (clips/s, store size, loss) while a person watches; in a log, one line
per ~10 % of each task, because rich writes only the final bar when output is not a terminal. Only
rank 0 draws anything under torchrun.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from toto_lens.progress import ProgressEvent, line_progress


class CliProgress:
    """A `Progress` callback for one command; use as a context manager so the bars stop on exit."""

    def __init__(self, console: Any, *, quiet: bool = False) -> None:
        self.console = console
        self.enabled = int(os.environ.get("RANK", "0")) == 0 and not quiet  # quiet: --json prints one object
        self.live = sys.stdout.isatty()
        self.lines = line_progress(lambda text: console.print(text, highlight=False, soft_wrap=True))
        self.bar: Any = None
        self.tasks: dict[str, Any] = {}

    def __call__(self, event: ProgressEvent) -> None:
        if not self.enabled:
            return
        if not self.live or event.message:
            if event.message and self.bar is not None:
                self.bar.console.print(event.line(), highlight=False, soft_wrap=True)  # above the bars
            else:
                self.lines(event)
            return
        if self.bar is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"), TimeRemainingColumn(), console=self.console,
                refresh_per_second=4,
            )  # fmt: skip
            self.bar.start()
        info = ", ".join(f"{k} {_fmt(v)}" for k, v in event.info.items())
        if event.task not in self.tasks:
            self.tasks[event.task] = self.bar.add_task(event.task, total=event.total, info=info)
        self.bar.update(self.tasks[event.task], completed=event.done, total=event.total, info=info)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def __enter__(self) -> CliProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fmt(value: Any) -> str:
    return f"{value:,.4g}" if isinstance(value, float) else str(value)
