"""What every study returns, and what every study does before and after its analysis.

A `Study` is the answer to one question: `result` (an `xarray.Dataset` whose attributes say what was
run on what), `figure` (a plotly Figure; `figures` when the answer takes several), `summary` (the short
table the command line prints, as data and as text) and `save(path)`, which writes the numbers
(`.nc` or `.zarr`) and the figures (`.html`) atomically, side by side.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toto_lens.errors import TotoLensError

DATA_SUFFIXES = (".nc", ".zarr")
FIGURE_SUFFIXES = (".html", ".json")


class StudyError(TotoLensError, ValueError):
    """A study asked for in a way that cannot be answered (an output it cannot write, no data for it)."""


@dataclass
class Summary:
    """The few numbers a person reads first: a table (`columns` × `rows` of text) and the data behind it.

    `data` is JSON-ready (what `--json` prints); `columns` and `rows` are the formatted table; `notes` are
    lines shown above it and `caption` one below.
    """

    title: str
    columns: list[str]
    rows: list[list[str]]
    data: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    caption: str = ""

    def text(self) -> str:
        """The table as plain text, columns padded (what `print(study.summary)` shows)."""
        widths = [max(len(str(c)) for c in col) for col in zip(self.columns, *self.rows, strict=True)]
        line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()  # noqa: E731
        body = [line(self.columns), line("-" * w for w in widths), *(line(r) for r in self.rows)]
        return "\n".join([*self.notes, self.title, *body, *([self.caption] if self.caption else [])])

    def __str__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:  # a table in a notebook
        from html import escape

        head = "".join(f"<th>{escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in self.rows)
        notes = "".join(f"<p>{escape(n)}</p>" for n in self.notes)
        caption = f"<caption>{escape(self.title)}</caption>"
        return f"{notes}<table>{caption}<tr>{head}</tr>{body}</table>{escape(self.caption)}"


@dataclass
class Study:
    """One answered question: numbers, figures, a summary, and where they were saved once saved."""

    name: str
    result: Any  # xarray.Dataset
    figures: list[Any]  # plotly Figures, the main one first
    summary: Summary

    @property
    def figure(self) -> Any:
        return self.figures[0]

    def save(self, path: str | os.PathLike) -> dict[str, Path]:
        """Write the result and the figures beside each other, each atomically; returns their paths.

        `x.nc` / `x.zarr` puts the numbers there and the figures in `x.html`; `x.html` (or `.json`) puts
        the figures there and the numbers in `x.nc`.
        """
        from toto_lens.figures import write_figure

        data, figure = output_paths(path)
        written = {"data": write_result(self.result, data)}
        written["figure"] = write_figure(self.figures if len(self.figures) > 1 else self.figure, figure)
        return written

    def _repr_html_(self) -> str:
        return self.summary._repr_html_()


def output_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """(numbers, figures) for `--out PATH`, refusing a suffix that is neither before any work starts."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in DATA_SUFFIXES:
        return path, path.with_suffix(".html")
    if suffix in FIGURE_SUFFIXES:
        return path.with_suffix(".nc"), path
    raise StudyError(
        f"--out {path.name!r}: use .nc or .zarr (the numbers, with the figure beside as .html) or .html "
        "(the figure, with the numbers beside as .nc)"
    )


def write_result(result: Any, path: Path) -> Path:
    """Write a result to .nc (netCDF) or .zarr, replacing what is there; a reader never sees half of it.

    netCDF attributes are numbers or strings: dicts, lists and booleans are stored as JSON text
    (`toto_lens.io.dict_attr` reads them back). With scipy as the only engine the file is netCDF3,
    which has no int64: counts and layer numbers are int32 there.
    """
    import xarray as xr

    from toto_lens.io import atomic_file

    out = result.copy()
    out.attrs = {k: _attr_value(v) for k, v in result.attrs.items() if v is not None}
    for name in out.variables:
        out[name].attrs = {k: _attr_value(v) for k, v in out[name].attrs.items() if v is not None}
    if path.suffix == ".zarr":
        # Variable-length strings: zarr v3 has no stable spec for fixed-width unicode and warns about it.
        strings = {k: out[k].astype(object) for k in out.coords if out[k].dtype.kind == "U"}
        tmp = path.with_name(f".{path.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        out.assign_coords(strings).to_zarr(tmp, mode="w", consolidated=False)
        if path.is_dir():
            shutil.rmtree(path)
        tmp.rename(path)
        return path
    engine = next((e for e in ("h5netcdf", "netcdf4", "scipy") if e in xr.backends.list_engines()), None)
    narrow = out.assign_coords({k: out[k].astype("int32") for k in out.coords if out[k].dtype == "int64"})
    narrow = narrow.assign(
        {k: narrow[k].astype("int32") for k in narrow.data_vars if narrow[k].dtype == "int64"}
    )
    with atomic_file(path) as tmp:
        narrow.to_netcdf(tmp, engine=engine)
    return path


def _attr_value(value: Any) -> Any:
    if isinstance(value, bool | dict | list | tuple):
        return json.dumps(plain(value))
    return value


def plain(value: Any) -> Any:
    """JSON-ready: numpy scalars to Python, NaN and infinities to null, tuples to lists."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def fmt(x: float | None, spec: str = ".3f") -> str:
    """A number for a table cell; — for missing or non-finite."""
    return "—" if x is None or not math.isfinite(x) else format(x, spec)


def open_study_cache(ckpt: str | os.PathLike | None, cache: Any, dataset: str | None) -> Any:
    """The cache a study reads: an opened `xarray.Dataset` as given, a store path, or a checkpoint's store."""
    import xarray as xr

    from toto_lens.store import open_cache

    if isinstance(cache, xr.Dataset):
        return cache
    if cache is not None:
        return open_cache(path=cache)
    if ckpt is None:
        raise StudyError("name a checkpoint (ckpt=…, --ckpt) or a cache (cache=…, --cache)")
    return open_cache(ckpt, dataset=dataset)


def provenance(study: str, ds: Any = None, **options: Any) -> dict[str, Any]:
    """Attributes that say what was run on what: the study, its options, the cache and its checkpoint."""
    from toto_lens import __version__
    from toto_lens.io import dict_attr

    attrs: dict[str, Any] = {"study": study, "toto_lens_version": __version__, "options": plain(options)}
    if ds is not None:
        ckpt = dict_attr(ds.attrs, "checkpoint")
        attrs["checkpoint"] = ckpt.get("name", "")
        attrs["checkpoint_sha256"] = ckpt.get("sha256", "")
        attrs["dataset"] = dict_attr(ds.attrs, "dataset").get("name", "")
        source = ds.encoding.get("source") if hasattr(ds, "encoding") else None
        if source:
            attrs["cache"] = str(source)
    return attrs


def names(value: str | Sequence[str]) -> list[str]:
    """`"a,b"` or `["a", "b"]` → ["a", "b"], blanks dropped, order kept, repeats once."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    return list(dict.fromkeys(p.strip() for p in parts if p.strip()))
