"""`toto-lens …`: the command line, thin over the library (see `app.py`).

Importing the command modules registers their commands on `app`; each keeps its heavy imports inside
the command functions.
"""

from toto_lens.cli import analyses, attention, convert, data, extract, models, probe, tokens, train, verify  # noqa: F401
from toto_lens.cli.app import app, main

__all__ = ["app", "main"]
