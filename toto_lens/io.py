"""Safe writes and careful reads, shared by every module that puts something on disk.

* `atomic_folder`: build a folder in a hidden temporary sibling, then rename it into place, so that a
  crash never leaves half a checkpoint, tokenizer or clip store; an existing folder is refused unless
  overwriting, and then replaced only once the new one is complete.
* `atomic_file`: the same for one file (figures, previews).
* `check_writable`: before long work, make sure its outputs can be written at all.
* `read_json` / `read_safetensors`: read what those wrote, turning every malformed file into one line
  that names the file and what to do. Only JSON and safetensors: nothing is unpickled.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from toto_lens.errors import TotoLensError


def rename_over(tmp: Path, target: Path) -> None:
    """`tmp` becomes `target`; rename(2) cannot replace a folder, so an existing one is moved aside first,
    then removed."""
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.rename(target, old / target.name)
        os.rename(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, target)


@contextmanager
def atomic_folder(
    target: str | os.PathLike, *, overwrite: bool = False, error: type[TotoLensError] = TotoLensError
) -> Iterator[Path]:
    """Yield an empty temporary folder; when the block ends without error it becomes `target`."""
    target = Path(target).expanduser()
    if target.exists() and not overwrite:
        raise error(f"{target} already exists; pass overwrite=True (CLI: --overwrite) to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        for p in tmp.rglob("*"):  # the data is on disk before the rename makes it visible
            if p.is_file():
                with open(p, "rb") as f:
                    os.fsync(f.fileno())
        rename_over(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def atomic_file(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `target` (same suffix); it replaces `target` when the block succeeds."""
    target = Path(target).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a figure is for sharing
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


class OutputError(TotoLensError):
    """An output that cannot be written where the user asked."""


def check_writable(target: str | os.PathLike, what: str = "--out") -> Path:
    """Make sure `target` (a file or a folder to be made) can be written, before any work is done.

    Creates the missing parent folders and writes and removes a probe file beside `target`, which is what
    the real write will need (atomic writes make a temporary sibling and rename it); a probe, not
    `os.access`, because root passes every permission check yet still cannot write a read-only mount.
    Raises `OutputError` naming the place and the option that chose it.
    """
    target = Path(target).expanduser()
    where = target.parent
    try:
        if target.exists() and target.is_dir():
            where = target  # a store or folder that is continued or replaced: written inside and beside
            _probe(target)
        where = target.parent
        where.mkdir(parents=True, exist_ok=True)
        _probe(where)
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise OutputError(
            f"cannot write {target} ({reason} in {where}); choose a writable place with {what}"
        ) from None
    return target


def _probe(folder: Path) -> None:
    fd, name = tempfile.mkstemp(prefix=".toto-lens-probe-", dir=folder)
    os.close(fd)
    os.unlink(name)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def to_json(value: Any, what: str, error: type[TotoLensError] = TotoLensError) -> str:
    try:
        return json.dumps(value, indent=2, allow_nan=False) + "\n"
    except (TypeError, ValueError) as e:
        raise error(f"{what} is not JSON-serialisable ({e}); keep it to str/int/float/list/dict") from None


def read_json(path: Path, *, redo: str, error: type[TotoLensError] = TotoLensError) -> dict[str, Any]:
    """A JSON object from `path`; `redo` says how to recover (e.g. "save the checkpoint again")."""
    if not path.is_file():
        raise error(f"{path} is missing; {redo}")
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{path} is not valid JSON ({e}); restore it or {redo}") from None
    if not isinstance(value, dict):
        raise error(f"{path} must hold a JSON object; {redo}")
    return value


def read_safetensors(
    path: Path,
    *,
    redo: str,
    error: type[TotoLensError] = TotoLensError,
    framework: str = "torch",
    device: str = "cpu",
) -> dict[str, Any]:
    """Tensors (torch) or arrays (numpy) from a safetensors file, with one clear line when it is broken."""
    if not path.is_file():
        raise error(f"{path} is missing; {redo}")
    try:
        if framework == "numpy":
            from safetensors.numpy import load_file

            return load_file(str(path))
        from safetensors.torch import load_file

        return load_file(str(path), device=str(device))
    except Exception as e:  # safetensors raises its own error type for every malformed file
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise error(f"{path} is truncated or corrupted ({reason}); {redo}") from None


def json_attr(attrs: dict[str, Any], name: str, default: Any = None) -> Any:
    """An attribute of a store or result that may have been written as JSON text (netCDF keeps only
    numbers and strings; zarr keeps dicts and lists as they are); `default` when absent or not JSON."""
    value = attrs.get(name, default)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return default
    return value


def dict_attr(attrs: dict[str, Any], name: str) -> dict[str, Any]:
    """A dict attribute (see `json_attr`); {} when absent, and {"name": text} for a plain string."""
    value = attrs.get(name)
    if isinstance(value, str):
        value = json_attr(attrs, name, {"name": value})
    return value if isinstance(value, dict) else {}


def human_bytes(n: float) -> str:
    """1234567 → '1.2 MB' (decimal units, as `du --si`)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
