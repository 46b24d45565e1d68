"""The root `toto-lens` app, the options its commands share, and the entry point.

Each command parses its options, calls one library function and prints (litgpt's `__main__` style).
Heavy modules (torch, plotly, …) are imported inside the commands so that `toto-lens --help` answers at
once. Expected failures (`TotoLensError`) print one line, `error: …`, and exit with code 2.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from toto_lens import __version__
from toto_lens.errors import TotoLensError

app = typer.Typer(
    name="toto-lens",
    help="Study what the layers of Toto models learn: train, extract, analyse, plot.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
# Piped output is not cut to 80 columns: tables stay whole in logs and files.
console = Console(width=None if sys.stdout.isatty() else 160)

CkptOpt = Annotated[
    str, typer.Option("--ckpt", help="Checkpoint name (under cache/checkpoints/) or folder path.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")]
DatasetOpt = Annotated[
    str | None,
    typer.Option(
        "--dataset", help="Dataset of the cache (e.g. moving-digits-val); default: the checkpoint's."
    ),
]
# --data is always a source (a name or a clip folder), --dataset always the name of a cache store,
# `<source>-<split>`: one option, one meaning, in every command.
DataOpt = Annotated[
    str,
    typer.Option(
        "--data",
        help="Source: moving-digits, image-digits, image-folder:PATH, video-folder:PATH (options after ?, "
        "e.g. ?frames=16&stride=4&size=32&mode=rgb), tokens:PATH, or a folder written by materialise.",
    ),
]
SplitOpt = Annotated[str, typer.Option("--split", help="Split of the source: train, val or test.")]
CacheOpt = Annotated[
    Path | None, typer.Option("--cache", help="Path of a cache store to read instead of the checkpoint's.")
]


TrustOpt = Annotated[
    bool,
    typer.Option(
        "--trust-code",
        help="Allow a checkpoint or tokenizer spec to name Python code (an external tokenizer factory) "
        "that is imported and run. Only for checkpoints whose source you trust.",
    ),
]

# What an interrupted command has kept and how to continue; set by the command once it knows (see
# `on_interrupt`), printed by `main` on Ctrl-C.
_interrupt_note: list[str] = []


def on_interrupt(note: str) -> None:
    """Say this on Ctrl-C instead of a bare "interrupted": what is kept, how to resume."""
    _interrupt_note[:] = [note]


def _version(value: bool) -> None:
    if value:
        print(f"toto-lens {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Study what the layers of Toto models learn: train, extract, analyse, plot."""


# Options that take several numbers after one flag (`--n 1 2 3`, `--widths 64 128 256`): click takes one
# value per flag, so the numbers that follow are rewritten as repeated flags before parsing.
MULTI_NUMBER_OPTIONS = ("--n", "--widths", "--lrs", "--seeds")


def expand_multi_values(argv: list[str]) -> list[str]:
    out: list[str] = []
    current, values = None, 0
    for arg in argv:
        if current and _is_number(arg):
            out += [current, arg] if values else [arg]
            values += 1
            continue
        current, values = (arg if arg in MULTI_NUMBER_OPTIONS else None), 0
        out.append(arg)
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _say_line(line: str) -> None:
    """One line to stderr in one write: under torchrun every rank shares the stream, and print's separate
    writes of the text and its newline let two ranks' lines run together."""
    sys.stderr.flush()
    try:
        os.write(sys.stderr.fileno(), f"{line}\n".encode())
    except (AttributeError, OSError, ValueError):  # a stream without a descriptor (tests, notebooks)
        print(line, file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: runs the app, turning expected failures into one line and exit code 2."""
    args = expand_multi_values(sys.argv[1:] if argv is None else list(argv))
    _interrupt_note.clear()
    try:
        app(args=args, prog_name="toto-lens")
    except TotoLensError as e:
        rank = os.environ.get("RANK", "0") if os.environ.get("WORLD_SIZE", "1") != "1" else "0"
        _say_line(f"{'' if rank == '0' else f'[rank {rank}] '}error: {e}")
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        _interrupted()
    except SystemExit as e:  # typer turns Ctrl-C into exit code 130 itself (`Exit(130) from` the interrupt)
        if e.code == 130 and isinstance(getattr(e.__context__, "__cause__", None), KeyboardInterrupt):
            _interrupted()
        raise


def _interrupted() -> None:
    note = f": {_interrupt_note[0]}" if _interrupt_note else ""
    _say_line(f"interrupted{note}")
    sys.exit(130)


OutOpt = Annotated[
    Path,
    typer.Option(
        "--out",
        help="The numbers (.nc or .zarr, figure beside as .html) or the figure (.html, numbers beside as .nc).",
    ),
]


def show(study, out: Path, as_json: bool, also: dict[str, Path] | None = None) -> None:
    """Save a study where --out says, then print its summary: a table, or one JSON object with --json;
    `also` names files the command wrote beside it (name → path)."""
    import json

    from toto_lens.studies.base import plain

    written = {**study.save(out), **(also or {})}
    s = study.summary
    if as_json:
        paths = {"out": str(out), **{k: str(v) for k, v in written.items()}}
        print(json.dumps(plain({**paths, **s.data, **({"notes": s.notes} if s.notes else {})})))
        return
    from rich import box
    from rich.table import Table

    for note in s.notes:
        console.print(note, highlight=False, soft_wrap=True)
    table = Table(title=s.title, caption=s.caption or None, box=box.SIMPLE_HEAD)
    for i, col in enumerate(s.columns):
        table.add_column(col, justify="left" if i == 0 else "right", no_wrap=True)
    for row in s.rows:
        table.add_row(*row)
    console.print(table)
    *first, last = [str(p) for p in written.values()]
    console.print(f"wrote {', '.join(first)} and {last}", soft_wrap=True)
