"""What every explorer shares: how it shows itself, how it finds its cache, and updates without echoes.

An explorer holds its controls (ipywidgets) and its figures (plotly `FigureWidget`s) as attributes and
`widget`, the box that lays them out. A control's observer writes the new data into the figures'
existing traces inside `batch_update()`, so the front end restyles what it already drew: nothing is
rebuilt and the output area never flickers. A bare explorer as the last line of a cell shows `widget`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from toto_lens.errors import TotoLensError


class WidgetError(TotoLensError, ValueError):
    """An explorer asked for with what it cannot show (not a result of its kind, no cache to read)."""


class Explorer:
    """Base of the explorers: `widget` to display, `controls` by name, `figures` by name."""

    widget: Any
    controls: dict[str, Any]
    figures: dict[str, Any]

    def __init__(self) -> None:
        self._held = 0

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        controls = ", ".join(
            f"{k}={getattr(c, 'value', None)!r}" for k, c in getattr(self, "controls", {}).items()
        )
        return f"{type(self).__name__}({controls})"

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Set several controls, update once: observers fired inside are ignored, `update()` runs at the
        end. (Clicking a heatmap cell sets layer and head together this way.)"""
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
            if not self._held:
                self.update()

    def _observe(self, control: Any, handler: Any) -> None:
        def changed(change: dict) -> None:
            if not self._held:
                handler()

        control.observe(changed, names="value")

    def update(self) -> None:  # every figure from every control
        raise NotImplementedError


def figure_widget(**layout: Any) -> Any:
    """An empty FigureWidget with the house template and `layout`."""
    import plotly.graph_objects as go

    fig = go.FigureWidget()
    fig.update_layout(template="plotly_white", margin={"l": 50, "r": 20, "t": 50, "b": 45}, **layout)
    return fig


def result_of(study_or_result: Any, needs: str, what: str) -> Any:
    """The `xarray.Dataset` of a `Study` or a bare result; it must hold the variable `needs`."""
    import xarray as xr

    result = getattr(study_or_result, "result", study_or_result)
    if not isinstance(result, xr.Dataset) or needs not in result.variables:
        raise WidgetError(
            f"expected a {what} study or its result (a Dataset with {needs}), got {type(result).__name__}"
        )
    return result


def open_explorer_cache(cache: Any) -> Any:
    """An opened cache as given, a store path, or a checkpoint name (its default store); only complete
    clips are kept."""
    import xarray as xr

    from toto_lens.analysis.token_cache import complete_clips
    from toto_lens.store import open_cache

    if isinstance(cache, xr.Dataset):
        ds = cache
    elif isinstance(cache, os.PathLike) or (isinstance(cache, str) and Path(cache).exists()):
        ds = open_cache(path=cache)
    elif isinstance(cache, str):
        ds = open_cache(cache)
    else:
        raise WidgetError(f"cache must be an opened cache, a store path or a checkpoint name, got {cache!r}")
    return complete_clips(ds)


def cache_of_result(result: Any, cache: Any) -> Any:
    """The cache a result was computed on: `cache` when given, else the one its attributes name (the store
    path a study records, else the checkpoint's store of the result's dataset); None when none opens."""
    if cache is not None:
        return open_explorer_cache(cache)
    path = result.attrs.get("cache")
    try:
        if path and Path(path).exists():
            return open_explorer_cache(path)
        name = result.attrs.get("checkpoint")
        if isinstance(name, str) and name:
            from toto_lens.store import open_cache

            from_attrs = open_cache(name, dataset=result.attrs.get("dataset") or None)
            return open_explorer_cache(from_attrs)
    except TotoLensError:
        return None
    return None
