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
import shlex
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toto_lens.errors import TotoLensError

DATA_SUFFIXES = (".nc", ".zarr")
FIGURE_SUFFIXES = (".html", ".json")
# Options the command line reads as several numbers after one flag (`cli.app.MULTI_NUMBER_OPTIONS`).
NUMBER_LISTS = ("--n", "--seeds")


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
    title: str = ""  # the saved page's title; the main figure's title when empty
    out_is_folder: bool = False  # its command's --out names the folder the saved files lie in

    @property
    def figure(self) -> Any:
        return self.figures[0]

    def save(self, path: str | os.PathLike) -> dict[str, Path]:
        """Write the result and the figures beside each other, each atomically; returns their paths.

        `x.nc` / `x.zarr` puts the numbers there and the figures in `x.html`; `x.html` (or `.json`) puts
        the figures there and the numbers in `x.nc`. The HTML page names the data and checkpoint it
        came from and the command that writes it again (also in the result's `command` attribute).

        When the place cannot be written (a full disk, a folder made read-only while the study ran), the
        result is not lost: it is written to a new temporary folder and the `StudyError` says where.
        """
        from toto_lens.io import OutputError

        data, figure = output_paths(path, check=False)
        if self.result.attrs.get("command"):
            base_command = str(self.result.attrs["command"]).split(" --out ")[0]
            out = Path(path).parent if self.out_is_folder else path
            self.result.attrs["command"] = f"{base_command} --out {shlex.quote(str(out))}"
        try:
            output_paths(path)  # the place may have changed since the study started
            return self._write(data, figure)
        except (OSError, OutputError) as e:
            if isinstance(e, OutputError):
                said = str(e).split("; choose")[0]
            else:
                said = f"cannot write {path} ({e.strerror or type(e).__name__})"
            kept = self._keep(data.name, figure.name)
            raise StudyError(f"{said}; the result is kept in {kept}") from None

    def _write(self, data: Path, figure: Path) -> dict[str, Path]:
        from toto_lens.figures import write_figure

        written = {"data": write_result(self.result, data)}
        figures = self.figures if len(self.figures) > 1 else self.figure
        written["figure"] = write_figure(
            figures, figure, title=self.title or None, source=describe(self.result.attrs),
            command=self.result.attrs.get("command"),
        )  # fmt: skip
        return written

    def _keep(self, data: str, figure: str) -> str:
        """Write the result into a new temporary folder (or one in the home folder); say what was kept."""
        for parent in (None, Path.home()):
            try:
                folder = Path(tempfile.mkdtemp(prefix=f"toto-lens-{self.name}-", dir=parent))
                written = self._write(folder / data, folder / figure)
            except OSError:
                continue
            return " and ".join(str(p) for p in written.values())
        return "nowhere: no temporary folder could be written either"

    def _repr_html_(self) -> str:
        return self.summary._repr_html_()


def output_paths(path: str | os.PathLike, check: bool = True) -> tuple[Path, Path]:
    """(numbers, figures) for `--out PATH`, refusing a suffix that is neither, or (`check`) a place that
    cannot be written, before any work starts (`toto_lens.io.check_writable` makes missing folders)."""
    from toto_lens.io import check_writable

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in DATA_SUFFIXES:
        paths = path, path.with_suffix(".html")
    elif suffix in FIGURE_SUFFIXES:
        paths = path.with_suffix(".nc"), path
    else:
        raise StudyError(
            f"--out {path.name!r}: use .nc or .zarr (the numbers, with the figure beside as .html) or .html "
            "(the figure, with the numbers beside as .nc)"
        )
    if check:
        for p in paths:
            check_writable(p, what="--out")
    return paths


def write_result(result: Any, path: Path) -> Path:
    """Write a result to .nc (netCDF) or .zarr, replacing what is there; a reader never sees half of it.

    netCDF attributes are numbers or strings: dicts, lists and booleans are stored as JSON text
    (`toto_lens.io.dict_attr` reads them back). With scipy as the only engine the file is netCDF3,
    which has no int64: counts and layer numbers are int32 there.
    """
    import xarray as xr

    from toto_lens.io import atomic_file, atomic_folder

    out = result.copy()
    out.attrs = {k: _attr_value(v) for k, v in result.attrs.items() if v is not None}
    for name in out.variables:
        out[name].attrs = {k: _attr_value(v) for k, v in out[name].attrs.items() if v is not None}
    if path.suffix == ".zarr":
        # Variable-length strings: zarr v3 has no stable spec for fixed-width unicode and warns about it.
        strings = {k: out[k].astype(object) for k in out.coords if out[k].dtype.kind == "U"}
        with atomic_folder(path, overwrite=True) as tmp:
            out.assign_coords(strings).to_zarr(tmp, mode="w", consolidated=False)
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
        from toto_lens.store.reader import store_identity  # the store: path, times, manifest digest

        attrs.update({k: v for k, v in store_identity(ds).items() if v})
    return attrs


def describe(attrs: dict[str, Any]) -> str:
    """One line for a page: what the numbers were computed from (checkpoints, data, cache) and by what."""
    from toto_lens.io import json_attr

    what = [f"{attrs.get('study', 'study')}"]
    ckpts = json_attr(attrs, "checkpoints") or ([attrs["checkpoint"]] if attrs.get("checkpoint") else [])
    if ckpts:
        sha = attrs.get("checkpoint_sha256")
        what.append(f"of checkpoint {', '.join(map(str, ckpts))}" + (f" (sha256 {sha[:12]})" if sha else ""))
    tokenizers = json_attr(attrs, "tokenizers")
    if tokenizers:
        what.append(f"of tokenizers {', '.join(map(str, tokenizers))}")
    options = json_attr(attrs, "options") or {}
    data = attrs.get("dataset") or options.get("data")
    if data:
        what.append(f"on {data}" + (f" ({options['split']})" if options.get("split") else ""))
    if attrs.get("cache"):
        what.append(f"from the cache {attrs['cache']}")
    if attrs.get("clips"):
        what.append(f"({attrs['clips']} clips)")
    what.append(f"by toto-lens {attrs.get('toto_lens_version', '')}".rstrip())
    return " ".join(what)


def command_line(command: str, *parts: Any) -> str:
    """The `toto-lens` command that computes a study again: `command_line("probe", "--ckpt", "demo")`.

    Parts that are None are left out with the flag before them; lists give a flag once per item
    (`--ckpt a --ckpt b`), except the number lists the CLI reads after one flag (`--n 1 2 3`).
    """
    words = ["toto-lens", *command.split()]
    items = list(parts)
    for flag, value in zip(items[::2], items[1::2], strict=True):
        if value is None or value is False:
            continue
        if value is True:
            words.append(flag)
        elif isinstance(value, list | tuple):
            if flag in NUMBER_LISTS:
                words += [flag, *map(str, value)]
            else:
                for v in value:
                    words += [flag, str(v)]
        else:
            words += [flag, str(value)]
    return shlex.join(words)


def cache_args(ckpt: Any, cache: Any, ds: Any, dataset: str | None = None) -> list[Any]:
    """The `--ckpt`/`--cache`/`--dataset` parts of a study's command: the store it read, named as given."""
    import xarray as xr

    if cache is not None:
        where = ds.encoding.get("source") if isinstance(cache, xr.Dataset) else cache
        return [
            "--ckpt",
            None if ckpt is None else str(ckpt),
            "--cache",
            None if where is None else str(where),
        ]
    return ["--ckpt", None if ckpt is None else str(ckpt), "--dataset", dataset]


def names(value: str | Sequence[str]) -> list[str]:
    """`"a,b"` or `["a", "b"]` → ["a", "b"], blanks dropped, order kept, repeats once."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    return list(dict.fromkeys(p.strip() for p in parts if p.strip()))


def cache_checkpoint(
    ds: Any, ckpt: Any = None, *, trust_code: bool = False, what: str
) -> tuple[Any, list[str]]:
    """The checkpoint a cache was extracted from (its recorded path, else its name, else `ckpt`) for a
    study that runs the weights (`what` names it in the error), and a note if its weights changed since."""
    from toto_lens.checkpoints import load_checkpoint
    from toto_lens.io import dict_attr

    recorded = dict_attr(ds.attrs, "checkpoint")
    why = "the cache names no checkpoint"
    for candidate in (recorded.get("path"), recorded.get("name"), ckpt):
        if not candidate:
            continue
        try:
            ck = load_checkpoint(candidate, trust_code=trust_code)
        except TotoLensError as e:
            why = str(e)
            continue
        changed = recorded.get("sha256") and recorded["sha256"] != ck.sha256
        return ck, [f"note: {ck.name}'s weights differ from those the cache was made with"] if changed else []
    raise StudyError(f"{what} needs the cache's checkpoint: {why}")


def cache_with_tokens(ckpt: Any, cache: Any, dataset: str | None) -> Any:
    """The study's cache, reduced to its complete clips, for a study that runs the clips' tokens again."""
    from toto_lens.analysis.token_cache import complete_clips

    ds = open_study_cache(ckpt, cache, dataset)
    if "tokens" not in ds.variables:
        raise StudyError("the cache holds no tokens (variable tokens); extract it again")
    return complete_clips(ds)
