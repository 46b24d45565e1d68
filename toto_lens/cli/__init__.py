"""`toto-lens …`: the command line, thin over the library (see `app.py`).

Importing the command modules registers their commands on `app`; each keeps its heavy imports inside
the command functions.
"""

from toto_lens.cli import (  # noqa: F401
    ablation,
    analyses,
    attention,
    attribution,
    convert,
    data,
    embedding,
    extract,
    generation,
    lens,
    models,
    probe,
    report,
    scaling,
    tokens,
    tracking,
    train,
    verify,
)
from toto_lens.cli.app import app, main

__all__ = ["app", "main"]
