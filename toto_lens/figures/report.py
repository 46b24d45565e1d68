"""Figures the appendix report adds: grouped bars across model sizes, and static PNGs of any figure.

PNGs go through plotly's kaleido, which drives a Chrome or Chromium: the system's (Debian's `chromium`,
found on PATH or named by `BROWSER_PATH`), since kaleido's own download needs the network. One browser
is started for all images of a report (`kaleido.start_sync_server`): ~0.2-0.5 s an image instead of ~2-6 s.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from toto_lens.figures import FigureError
from toto_lens.io import atomic_file

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


def grouped_bars(
    categories: Sequence[str],
    series: dict[str, Sequence[float | None]],
    *,
    title: str,
    yaxis: str,
    line: float | None = None,
) -> Any:
    """One bar per (category, series), grouped by category; `line` draws a dashed reference level."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, values in series.items():
        ys = [None if v is None else float(v) for v in values]
        fig.add_bar(name=name, x=list(categories), y=ys, text=[("—" if y is None else f"{y:.3g}") for y in ys],
                    textposition="outside")  # fmt: skip
    if line is not None:
        fig.add_hline(y=line, line_dash="dash", line_color="#888", annotation_text=f"{line:g}")
    fig.update_layout(title=title, barmode="group", xaxis_title="size", yaxis_title=yaxis, height=380,
                      template="plotly_white", legend={"orientation": "h", "y": -0.2})  # fmt: skip
    return fig


def lines_figure(
    curves: dict[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str,
    xaxis: str,
    yaxis: str,
    log_x: bool = False,
) -> Any:
    """One line with markers per named curve (x values, y values), in the order given."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, (xs, ys) in curves.items():
        order = sorted(range(len(xs)), key=lambda i: xs[i])
        fig.add_scatter(name=name, x=[xs[i] for i in order], y=[ys[i] for i in order], mode="lines+markers")
    fig.update_layout(title=title, xaxis_title=xaxis, yaxis_title=yaxis, height=400, template="plotly_white")
    if log_x:
        fig.update_xaxes(type="log")
    return fig


def browser() -> str | None:
    """The Chrome/Chromium kaleido will drive: `BROWSER_PATH`, else the first of BROWSERS on PATH."""
    named = os.environ.get("BROWSER_PATH")
    if named:
        return named if Path(named).is_file() else None
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


class PngWriter:
    """Writes figures as PNG through one kaleido browser; use as a context manager.

    `available` is False (and `why` says why) when no browser is found: the caller keeps the HTML and
    says that the PNGs are missing, rather than failing a whole report over pictures.
    """

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale
        path = browser()
        self.available = path is not None
        self.why = (
            "" if path else "no Chrome or Chromium found (apt-get install chromium, or set BROWSER_PATH)"
        )
        self._started = False
        if path:
            os.environ["BROWSER_PATH"] = path

    def __enter__(self) -> PngWriter:
        return self

    def write(self, fig: Any, path: Path, width: int = 1000, height: int | None = None) -> Path:
        import plotly.io as pio

        if not self.available:
            raise FigureError(f"cannot write {path.name}: {self.why}")
        if not self._started:
            import kaleido

            kaleido.start_sync_server(silence_warnings=True)
            self._started = True
        height = height or int(fig.layout.height or 500)
        with warnings.catch_warnings():  # plotly warns that its per-call browser options go unused
            warnings.simplefilter("ignore", UserWarning)
            data = pio.to_image(fig, format="png", width=width, height=height, scale=self.scale)
        with atomic_file(path) as tmp:
            tmp.write_bytes(data)
        return path

    def __exit__(self, *exc: object) -> None:
        if self._started:
            import kaleido

            kaleido.stop_sync_server(silence_warnings=True)
            self._started = False
