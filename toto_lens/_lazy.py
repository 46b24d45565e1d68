"""Lazy package attributes (PEP 562): `from toto_lens import Toto` works, `import toto_lens` stays cheap."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def lazy_exports(package: str, exports: dict[str, str], names: list[str]) -> tuple[Callable, Callable]:
    """`__getattr__` and `__dir__` for `package`, importing `exports[name]` on first access of name."""

    def __getattr__(name: str):
        if name in exports:
            value = getattr(importlib.import_module(exports[name]), name)
            setattr(sys.modules[package], name, value)  # later lookups skip this function
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(names)

    return __getattr__, __dir__
