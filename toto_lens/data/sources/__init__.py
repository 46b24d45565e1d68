"""Data sources by name: the bundled digits, the user's image folders, video folders and token shards.

A source is named `NAME` or `SCHEME:ARGUMENT`, with options after a `?` as in a URL:

    moving-digits, image-digits          the bundled clips (scikit-learn's digits; nothing is downloaded)
    image-folder:PATH?frames=16&size=32&mode=rgb
                                         class subfolders of images (ImageNet style), F images a clip
    video-folder:PATH?frames=16&stride=4&size=32&mode=rgb&start=0
                                         video files (mp4, webm, gif …), F frames at a stride
    tokens:PATH                          pre-tokenized shards written by `toto-lens data tokenize`
    PATH                                 a folder of clips written by `toto-lens data materialise`

Every source answers the same protocol (`ClipSource`: len, clip by index, name, split, spec, label_spec),
so the tokenizer, trainer and extractor never ask which one fed them. `register_source` adds a scheme:
its factory is called with the argument (if it takes one), `split`, `n_clips`, `seed` and the options,
each option parsed by the type of its default. `check_source` answers bad names, unknown options and
missing paths at once, before anything is read.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toto_lens.data.clip import ClipSource, ClipStore
from toto_lens.errors import ConfigError


@dataclass(frozen=True)
class SourceEntry:
    """How a scheme opens: factory(argument?, split=, n_clips=, seed=, **options) → ClipSource."""

    factory: Callable[..., ClipSource]
    argument: str | None = None  # what follows `scheme:` (e.g. "PATH"); None: the name stands alone
    options: dict[str, Any] = field(default_factory=dict)  # option → default (its type parses the text)
    summary: str = ""
    is_path: bool = True  # the argument is a path that must exist


SOURCES: dict[str, SourceEntry] = {}


def register_source(
    scheme: str,
    factory: Callable[..., ClipSource],
    *,
    argument: str | None = None,
    options: dict[str, Any] | None = None,
    summary: str = "",
    is_path: bool = True,
) -> None:
    """Add (or replace) a source scheme; `argument` names what follows `scheme:` (None: takes nothing)."""
    if not scheme or any(ch in scheme for ch in ":?,=&/"):
        raise ConfigError(f"source scheme {scheme!r} must be a plain name (no : ? , = & /)")
    SOURCES[scheme] = SourceEntry(factory, argument, dict(options or {}), summary, is_path)


@dataclass(frozen=True)
class SourceName:
    scheme: str | None  # None: a materialised folder named by its path
    argument: str
    options: dict[str, Any]


def _usage() -> str:
    forms = [s if e.argument is None else f"{s}:{e.argument}" for s, e in SOURCES.items()]
    return ", ".join(forms) + ", or a folder written by `toto-lens data materialise`"


def parse_source(name: str | os.PathLike) -> SourceName:
    """Split a source name into scheme, argument and typed options; one line for anything wrong."""
    text = str(name).strip()
    head, _, query = text.partition("?")
    scheme, sep, argument = head.partition(":")
    if scheme in SOURCES:
        entry = SOURCES[scheme]
        if entry.argument is not None and not argument:
            raise ConfigError(f"{scheme} needs a {entry.argument}: --data {scheme}:{entry.argument}")
        if entry.argument is None and sep:
            raise ConfigError(f"{scheme} takes no argument; write --data {scheme}")
        return SourceName(scheme, argument, _options(scheme, entry, query))
    if (Path(text) / "clips.json").is_file():
        return SourceName(None, text, {})
    if sep and len(scheme) > 1:  # `C:\...` is a drive, not a scheme
        raise ConfigError(f"unknown data source {scheme!r} in {text!r}; choose one of: {_usage()}")
    raise ConfigError(f"unknown data {text!r}; choose one of: {_usage()}")


def _options(scheme: str, entry: SourceEntry, query: str) -> dict[str, Any]:
    out = dict(entry.options)
    for pair in filter(None, query.split("&")):
        key, sep, value = pair.partition("=")
        if key not in entry.options:
            known = ", ".join(entry.options) or "none"
            raise ConfigError(f"{scheme}: unknown option {key!r}; its options are: {known}")
        if not sep or not value:
            raise ConfigError(f"{scheme}: option {key} needs a value, e.g. {key}={entry.options[key]}")
        default = entry.options[key]
        try:
            out[key] = type(default)(value) if not isinstance(default, bool) else value in ("1", "true")
        except ValueError:
            raise ConfigError(
                f"{scheme}: option {key}={value!r} is not a {type(default).__name__} (e.g. {default})"
            ) from None
    return out


def check_source(name: str | os.PathLike) -> None:
    """Raise now, reading nothing, when `name` names no source, an unknown option or a missing path."""
    parsed = parse_source(name)
    if parsed.scheme is not None and SOURCES[parsed.scheme].is_path and parsed.argument:
        path = Path(parsed.argument).expanduser()
        if not path.exists():
            raise ConfigError(f"{parsed.scheme}: {path} does not exist; give the folder of your data")
        if not path.is_dir():
            raise ConfigError(f"{parsed.scheme}: {path} is a file; give the folder that holds the files")


def open_source(
    name: str | os.PathLike, split: str = "train", n_clips: int = 1024, seed: int = 0
) -> ClipSource:
    """A source by name (see the module docstring), or a materialised clip folder by path."""
    check_source(name)
    parsed = parse_source(name)
    if parsed.scheme is None:
        return ClipStore(parsed.argument)
    entry = SOURCES[parsed.scheme]
    args = () if entry.argument is None else (parsed.argument,)
    return entry.factory(*args, split=split, n_clips=n_clips, seed=seed, **parsed.options)


def _register_builtins() -> None:
    from toto_lens.data.moving import ImageSequences, MovingDigits
    from toto_lens.data.sources.images import ImageFolder
    from toto_lens.data.sources.tokens import TokenShards
    from toto_lens.data.sources.video import VideoFolder

    register_source("moving-digits", MovingDigits, summary="videos of moving digits (bundled)")
    register_source("image-digits", ImageSequences, summary="sequences of digit images (bundled)")
    register_source("image-folder", ImageFolder, argument="PATH", options=ImageFolder.OPTIONS,
                    summary="class subfolders of images, grouped into sequences")  # fmt: skip
    register_source("video-folder", VideoFolder, argument="PATH", options=VideoFolder.OPTIONS,
                    summary="video files, F frames at a stride")  # fmt: skip
    register_source("tokens", TokenShards, argument="PATH", summary="pre-tokenized token shards")


_register_builtins()
