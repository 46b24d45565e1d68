"""The zarr store of one extraction: creation, the one-writer lock, resume bookkeeping, final attributes.

Following the zarr v3 facts in ECOSYSTEM.md: one process (rank 0) creates every array and writes the
group attributes; each batch is then written as whole chunks by the one process that computed it, and
its clips are marked in the `complete` array afterwards. zarr's local store writes each chunk to a
temporary file and renames it, so a kill leaves either the old chunk or the new one, never half; a batch
not marked complete is simply computed and written again on resume, with the same values.

The lock is an exclusive `flock` on the store's directory: it needs no file inside the store (zarr
warns about foreign files there) and the kernel drops it when the process dies, SIGKILL included, so a
killed extraction never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from toto_lens.errors import TotoLensError
from toto_lens.store.schema import SCHEMA_VERSION, Shape, VarSpec, compressors

# Every chunk of the region a writer fills is written, fill-only ones included, so that the chunks a store
# holds follow from its metadata (`integrity.expected`) and a missing one can be told from an empty one.
WRITE_CONFIG = {"write_empty_chunks": True}


class ExtractError(TotoLensError):
    """An extraction that cannot start or continue: a locked, foreign or unreadable store."""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class StoreLock:
    """Exclusive, non-blocking lock on a store directory for the life of one extraction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> StoreLock:
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ExtractError(
                f"another extraction is writing {self.path} right now; wait for it to finish "
                "(then run the same command to check it), or write elsewhere with --out"
            ) from None
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> StoreLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


# Attributes that must match for a run to continue a store: same weights, same data, same request.
IDENTITY = ("schema_version", "checkpoint", "model_config", "tokenizer", "dataset", "layout", "request")


def encode_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """Structured attributes (dicts, lists) as JSON text, so that every attribute is a string, a number or
    a boolean: what netCDF and xarray users expect (`ds[["loss"]].to_netcdf(...)` works as it is).
    `toto_lens.io.dict_attr` / `json_attr` read them back."""
    return {k: json.dumps(v) if isinstance(v, dict | list | tuple) else v for k, v in attrs.items()}


def identity(attrs: dict[str, Any]) -> dict[str, Any]:
    from toto_lens.io import json_attr

    # through JSON, as the attributes were stored: tuples become lists, structures JSON text on disk
    ident = json.loads(json.dumps({k: json_attr(attrs, k) for k in IDENTITY}))
    if isinstance(ident["checkpoint"], dict):
        ident["checkpoint"] = ident["checkpoint"].get("sha256")  # a renamed checkpoint is the same one
    return ident


def describe_mismatch(old: dict[str, Any], new: dict[str, Any]) -> str:
    a, b = identity(old), identity(new)
    differ = [k for k in IDENTITY if a[k] != b[k]]
    if "checkpoint" in differ:
        return (
            f"it was written from another checkpoint (weights sha256 {str(a['checkpoint'])[:12]}…, "
            f"this one is {str(b['checkpoint'])[:12]}…)"
        )
    if "request" in differ:
        keys = [k for k in b["request"] if (a["request"] or {}).get(k) != b["request"][k]]
        return f"it was written with other settings ({', '.join(keys)} differ)"
    return f"its {', '.join(differ)} differ"


def open_or_create(
    path: Path, attrs: dict[str, Any], specs: list[VarSpec], shape: Shape, batch: int, overwrite: bool
) -> tuple[Any, bool]:
    """The store's zarr group, created (or re-created with overwrite) or continued; (group, resumed).

    The caller holds the lock. A store from another checkpoint or with other settings is refused.
    """
    import zarr

    from toto_lens.store.integrity import checked_store

    if (path / "zarr.json").is_file() and not overwrite:
        try:
            group = zarr.open_group(store=checked_store(path, read_only=False), mode="r+")
            old = dict(group.attrs)
        except Exception as e:  # an unreadable store: say so instead of a zarr traceback
            raise ExtractError(
                f"{path} is not a readable zarr store ({e}); pass --overwrite to replace it"
            ) from None
        if old.get("arrays_ready"):
            if old.get("schema_version") != SCHEMA_VERSION:
                raise ExtractError(
                    f"{path} has cache schema version {old.get('schema_version')!r} (this toto-lens writes "
                    f"version {SCHEMA_VERSION}, with chunk checksums and a manifest); pass --overwrite to "
                    "extract it again"
                )
            if identity(old) != identity(attrs):
                raise ExtractError(
                    f"{path} holds another extraction: {describe_mismatch(old, attrs)}; "
                    "pass --overwrite to replace it, or --out to write elsewhere"
                )
            return group, True
        # created but killed before every array existed: nothing in it is complete, start again
    for child in path.iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()
    group = zarr.create_group(
        store=checked_store(path, read_only=False), zarr_format=3,
        attributes={**encode_attrs(attrs), "arrays_ready": False},
    )  # fmt: skip
    for spec in specs:
        group.create_array(
            spec.name,
            shape=spec.shape(shape),
            chunks=spec.chunks(shape, batch),
            dtype=spec.dtype,
            fill_value=spec.fill,
            compressors=compressors(),
            config=WRITE_CONFIG,
            dimension_names=spec.dims,
            attributes={
                **spec.attrs,
                **({"coordinates": " ".join(spec.coordinates)} if spec.coordinates else {}),
            },
        )
    return group, False


def write_coordinates(group: Any, coords: dict[str, tuple[tuple[str, ...], np.ndarray]]) -> None:
    """Create and write the static coordinates (one chunk each), or write again those that exist."""
    for name, (dims, values) in coords.items():
        if name in group:
            arr = group[name].with_config(WRITE_CONFIG)
        else:
            arr = group.create_array(
                name, shape=values.shape, chunks=values.shape or None, dtype=values.dtype,
                compressors=compressors(), config=WRITE_CONFIG, dimension_names=dims,
            )  # fmt: skip
        arr[...] = values


def write_batch(group: Any, name: str, start: int, values: np.ndarray, layers: tuple[int, ...]) -> None:
    """Write one batch's slice of an array as whole chunks, fill-only ones included; the attention
    arrays skip layer 0 (the embeddings have no attention: those chunks are never written)."""
    BatchWriter(group, layers).write(start, {name: values})


class BatchWriter:
    """Writes batches into a store's arrays as `write_batch` does, the arrays opened once and a batch's
    arrays written together: zarr's async API takes every chunk of the batch in one event-loop round
    trip, where one `arr[...] = values` per array paid a metadata read and a round trip each (about
    3 ms per array at toto-tiny's sizes, a third of the writer's time)."""

    def __init__(self, group: Any, layers: tuple[int, ...]) -> None:
        self.group, self.layers = group, layers
        self._arrays: dict[str, Any] = {}

    def _array(self, name: str) -> Any:
        if name not in self._arrays:
            self._arrays[name] = self.group[name].with_config(WRITE_CONFIG).async_array
        return self._arrays[name]

    def _parts(self, name: str, start: int, values: np.ndarray):
        stop = start + len(values)
        if name.startswith("attn_") and 0 in self.layers:
            for i, layer in enumerate(self.layers):
                if layer != 0:
                    yield (slice(start, stop), i), values[:, i]
        else:
            yield slice(start, stop), values

    def write(self, start: int, arrays: dict[str, np.ndarray]) -> None:
        """Write each array's slice from clip `start` on; returns when every chunk is on disk."""
        import asyncio

        from zarr.core.sync import sync

        targets = {name: self._array(name) for name in arrays}  # opened here: no sync() inside the loop

        async def every() -> None:
            await asyncio.gather(
                *(
                    targets[name].setitem(where, part)
                    for name, values in arrays.items()
                    for where, part in self._parts(name, start, values)
                )
            )

        sync(every())


def mark_incomplete(group: Any, clips: list[int] | np.ndarray) -> None:
    """Mark clips to be extracted again (their batches are redone on resume); the store is unfinished."""
    clips = np.asarray(clips, dtype=np.int64)
    if clips.size:
        complete = group["complete"].with_config(WRITE_CONFIG)
        values = complete[:]
        values[clips] = 0
        complete[:] = values
    group.attrs.update({"complete": False})


def redo_missing(group: Any, path: Path, coords: dict[str, tuple[tuple[str, ...], np.ndarray]]) -> None:
    """Before a store is continued: the clips marked complete whose chunk files are not all there are
    marked to be extracted again, and missing coordinate chunks (`coords`: the static coordinates) are
    written again. A listing (`integrity.missing`); no chunk is read."""
    from toto_lens.store import integrity

    meta = integrity.array_meta(path)
    arrays = integrity.expected(meta, dict(group.attrs))
    lost = integrity.missing(path, arrays, integrity.done_clip_chunks(meta, group["complete"][:]))
    static = [name for name in lost if name in coords]
    if static:
        write_coordinates(group, {name: coords[name] for name in static})
    clips = sorted({c for name in lost for c in integrity.clips_of_keys(meta.get(name), lost[name])})
    if clips or (static and group.attrs.get("complete")):
        mark_incomplete(group, clips)


def done_batches(group: Any, batch: int) -> np.ndarray:
    """(n_batches,) bool: batches whose clips are all marked complete."""
    complete = group["complete"][:]  # a corrupt chunk: integrity.ChunkError, one line
    n = -(-len(complete) // batch)
    return np.array([bool(complete[b * batch : (b + 1) * batch].all()) for b in range(n)])


def bytes_on_disk(root: Path) -> int:
    """Bytes of every file under a folder.

    Other processes may be writing into the folder meanwhile (torchrun ranks, the writer thread):
    a file that vanishes between listing and stat, such as zarr's `*.partial` temporary before its
    rename, is skipped rather than raised.
    """
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(folder, name))
            except FileNotFoundError:
                continue
    return total


def batch_bytes(root: Path, specs: list[VarSpec], batch: int, start: int, stop: int) -> int:
    """Bytes of the chunks that hold clips start … stop−1: `<var>/c/<clip chunk index>/…`."""
    total = 0
    for spec in specs:
        size = spec.clip_chunk(batch)
        for index in range(start // size, -(-stop // size)):
            total += bytes_on_disk(root / spec.name / "c" / str(index))
    return total


def finish(group: Any, path: Path) -> None:
    """Write the final attributes: complete, the time, and the manifest of the chunks it holds."""
    from toto_lens.store.integrity import make_manifest

    manifest = make_manifest(path, dict(group.attrs))
    group.attrs.update({"complete": True, "finished": now(), "manifest": json.dumps(manifest)})


def schema_attrs(**fields: Any) -> dict[str, Any]:
    from toto_lens import __version__

    return {"schema_version": SCHEMA_VERSION, "toto_lens_version": __version__, "complete": False, **fields}
