"""The root `toto-lens` app, the options its commands share, and the entry point.

Each command parses its options, calls one library function and prints (litgpt's `__main__` style).
Heavy modules (torch, plotly, …) are imported inside the commands so that `toto-lens --help` answers at
once. Expected failures (`TotoLensError`) print one line, `error: …`, and exit with code 2.
"""

from __future__ import annotations

import sys
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


def main(argv: list[str] | None = None) -> None:
    """Console entry point: runs the app, turning expected failures into one line and exit code 2."""
    try:
        app(args=argv, prog_name="toto-lens")
    except TotoLensError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
