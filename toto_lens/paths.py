"""Where toto-lens keeps what it makes: checkpoints, tokenizers and zarr stores under one cache root.

The root is `$TOTO_LENS_CACHE` when set, otherwise the `cache/` folder of the source checkout toto-lens
runs from, otherwise `./cache`.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    env = os.environ.get("TOTO_LENS_CACHE")
    if env:
        return Path(env).expanduser()
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "cache").is_dir():
        return checkout / "cache"
    return Path("cache")


def is_bare_name(text: str) -> bool:
    """A registry name rather than a path: no separator, not `.` or `..`."""
    return "/" not in text and os.sep not in text and text not in (".", "..", "")
