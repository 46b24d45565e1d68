"""`toto-lens verify`: every chunk of a store checked (present by listing, intact by its crc32c checksum,
nothing decompressed), a per-array report, and the repair that makes the extract command redo the bad
clips: corrupt chunk files removed, their clips marked not complete, the store unfinished."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toto_lens.store.integrity import (
    ArrayMeta,
    ChunkError,
    array_meta,
    checked_store,
    checksum_ok,
    clip_ranges,
    clips_of_keys,
    count,
    done_clip_chunks,
    expected,
    keys,
    listed,
    manifest_of,
    redo_command,
    store_attrs,
)


@dataclass
class ArrayReport:
    name: str
    chunks: int = 0
    ok: int = 0
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    clips: list[int] = field(default_factory=list)  # clips whose chunks are missing or corrupt

    def to_dict(self) -> dict[str, Any]:
        return {
            "chunks": self.chunks, "ok": self.ok, "missing": self.missing, "corrupt": self.corrupt,
            "clips": clip_ranges(self.clips) if self.clips else "", "clip_list": self.clips,
        }  # fmt: skip


@dataclass
class VerifyReport:
    path: Path
    finished: bool
    arrays: dict[str, ArrayReport]
    unchecked_clips: int = 0  # clips not yet written (an unfinished store): nothing to check there

    @property
    def sound(self) -> bool:
        return all(not (a.missing or a.corrupt) for a in self.arrays.values())

    @property
    def bad_clips(self) -> list[int]:
        return sorted({c for a in self.arrays.values() for c in a.clips})

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path), "sound": self.sound, "finished": self.finished,
            "chunks": sum(a.chunks for a in self.arrays.values()),
            "missing": sum(len(a.missing) for a in self.arrays.values()),
            "corrupt": sum(len(a.corrupt) for a in self.arrays.values()),
            "clips": clip_ranges(self.bad_clips) if self.bad_clips else "",
            "unchecked_clips": self.unchecked_clips,
            "arrays": {k: v.to_dict() for k, v in self.arrays.items()},
        }  # fmt: skip


def read_complete(path: Path, meta: dict[str, ArrayMeta]) -> tuple[np.ndarray, list[str]]:
    """The `complete` array, chunk by chunk; a missing or corrupt chunk reads as 0 (not complete).
    Returns (complete, keys of its corrupt chunks)."""
    m = meta["complete"]
    out = np.zeros(m.shape[0], dtype=np.uint8)
    bad = []
    import zarr

    arr = zarr.open_array(store=checked_store(path), path="complete", mode="r")
    for i in range(m.grid[0]):
        span = m.clips_of(i)
        try:
            out[span.start : span.stop] = arr[span.start : span.stop]
        except ChunkError:
            bad.append(f"c/{i}")
    return out, bad


def verify(path: Path, progress=None) -> VerifyReport:
    """Check every chunk a store must hold: present (listing) and intact (checksum, no decompression).

    A finished store is checked against its manifest; an unfinished one against the chunks of the clips
    marked complete (the rest is not written yet)."""
    from toto_lens.progress import report

    attrs = store_attrs(path)
    meta = array_meta(path)
    manifest = manifest_of(attrs) if attrs.get("complete") else None
    finished = manifest is not None
    corrupt_complete: list[str] = []
    if finished:
        arrays = manifest["arrays"]
        wanted = None
        unchecked = 0
    else:
        arrays = expected(meta, attrs)
        complete, corrupt_complete = read_complete(path, meta) if "complete" in meta else (np.zeros(0), [])
        wanted = done_clip_chunks(meta, complete)
        unchecked = int(len(complete) - complete.astype(bool).sum())
    reports = {}
    total = sum(count(r) for r in arrays.values())
    done = 0
    for name, ranges in arrays.items():
        rep = ArrayReport(name)
        present = listed(path, name)
        for key in keys(ranges, None if wanted is None else wanted.get(name)):
            rep.chunks += 1
            if key not in present:
                rep.missing.append(key)
                continue
            try:
                ok = checksum_ok((path / name / key).read_bytes())
            except OSError:
                ok = False
            if ok:
                rep.ok += 1
            else:
                rep.corrupt.append(key)
            done += 1
            if done % 256 == 0:
                report(progress, "verify", done, total, "chunks")
        if name == "complete":
            rep.corrupt += [k for k in corrupt_complete if k not in rep.corrupt]
        rep.clips = sorted(clips_of_keys(meta.get(name), rep.missing + rep.corrupt))
        reports[name] = rep
    report(progress, "verify", total, total, "chunks")
    return VerifyReport(path, finished, reports, unchecked)


def repair_store(path: Path, result: VerifyReport) -> list[int]:
    """Make the same extract command redo what `verify` found bad: remove corrupt chunk files (a missing
    coordinate chunk is written again on resume), mark the clips of bad chunks not complete and the
    store unfinished. Returns the clips marked. The caller holds the store's lock."""
    import zarr

    for rep in result.arrays.values():
        for key in rep.corrupt:
            (path / rep.name / key).unlink(missing_ok=True)
    from toto_lens.store.writer import mark_incomplete

    clips = result.bad_clips
    group = zarr.open_group(store=checked_store(path, read_only=False), mode="r+")
    mark_incomplete(group, clips)
    return clips


def check_store(*, ckpt=None, dataset=None, path=None, repair: bool = False, progress=None) -> dict[str, Any]:
    """`toto-lens verify`: verify a store (by path, or a checkpoint's by dataset), optionally repair it;
    the report as JSON-ready data, with `sound` and the sentences to print (`lines`).

    Raises `CacheError` for what cannot be verified: no store, an unknown or old schema (version 1
    stores have no checksums: nothing in them can be checked)."""
    from toto_lens.store.reader import check_version, store_path

    path = store_path(ckpt, dataset, path, "name a checkpoint (--ckpt) or a store (--cache)")
    attrs = store_attrs(path)
    check_version(path, attrs.get("schema_version"))
    result = verify(path, progress)
    out = result.to_dict()
    lines = []
    if not result.finished:
        lines.append(
            f"the store is unfinished: {result.unchecked_clips} clips are not written yet and were not checked"
        )
    command = redo_command(attrs, path)
    if result.sound:
        lines.append(f"sound: {out['chunks']} chunks present, every checksum matches")
    elif repair:
        from toto_lens.store.writer import StoreLock

        with StoreLock(path):
            clips = repair_store(path, result)
        lines.append(
            f"repaired: {out['missing']} missing and {out['corrupt']} corrupt chunks; {clip_ranges(clips)} "
            f"marked for extraction again; run: {command}"
        )
        out["repaired_clips"] = clips
    else:
        # a listing finds missing chunks again on resume; corrupt ones must be marked first
        first = (
            f"mark them with `toto-lens verify --cache {path} --repair`, then run"
            if out["corrupt"]
            else "run"
        )
        lines.append(
            f"damaged: {out['missing']} missing and {out['corrupt']} corrupt chunks ({out['clips'] or 'coordinates'}); "
            f"{first}: {command}"
        )
    out["command"] = command
    out["lines"] = lines
    return out
