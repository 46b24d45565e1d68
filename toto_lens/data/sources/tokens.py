"""`tokens:PATH`: pre-tokenized clips as flat memory-mapped shards plus an index, read without re-encoding.

The layout large trainers use (nanoGPT's `.bin`, litdata's chunks): the visual codes of every clip,
raster order frame after frame, as one flat array per shard of fixed-length rows, with a JSON index
beside them. One folder per split (`PATH/val/` or PATH itself):

    index.json              format, split, clips, dtype, frames/rows/cols, vocab_size, the shards (file,
                            clips), the label spec, the source it was made from, the tokenizer fingerprint
    codes-00000.bin …       uint16 (or int32 past 65,535 codes) [clips, frames·rows·cols]
    labels.safetensors      kind and every label of the source, one row per clip
    tokenizer.json/.safetensors   the tokenizer that made the codes (a tokenizer folder: decodes them)

Codes, not model token ids, are stored, so one set of shards serves any model whose vocabulary holds the
codes. A model reads them only with the tokenizer they were made with (`check_tokenizer_match`);
writing is resumable shard by shard (`write_token_shards`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from toto_lens.data.clip import Clip, ClipSource, check_index
from toto_lens.data.digits import SPLITS, check_split
from toto_lens.data.labels import KINDS, LabelSpec, kind_code
from toto_lens.errors import ConfigError
from toto_lens.io import atomic_folder, read_json, read_safetensors, to_json

SCHEME = "tokens"
FORMAT = "toto-lens-tokens"
SHARD_CLIPS = 4096  # clips per shard file
ENCODE_CLIPS = 64  # clips rendered and tokenized at a time while writing
_REDO = "write the shards again with `toto-lens data tokenize`"


def tokenizer_fingerprint(tok: Any) -> str:
    """A hash of a tokenizer's spec and state arrays: equal exactly when it maps frames to the same codes.
    A grey tokenizer's `channels: 1` is left out, so it hashes as specs written before the key existed."""
    spec = {k: v for k, v in tok.spec.items() if not (k == "channels" and v == 1)}
    h = hashlib.sha256(json.dumps(spec, sort_keys=True).encode())
    for key, value in sorted(tok.state_dict().items()):
        h.update(key.encode())
        h.update(np.ascontiguousarray(np.asarray(value)).tobytes())
    return h.hexdigest()[:16]


def _split_folder(root: Path, split: str) -> Path:
    check_split(split)
    if (root / "index.json").is_file():
        return root
    if (root / split / "index.json").is_file():
        return root / split
    have = [s for s in SPLITS if (root / s / "index.json").is_file()]
    raise ConfigError(
        f"{SCHEME}: no shards of split {split!r} in {root} (found: {', '.join(have) or 'none'}); "
        f"write them with `toto-lens data tokenize --split {split} --out {root}`"
    )


class TokenShards:
    """Clips of visual codes read from memory-mapped shards (see the module docstring)."""

    kind = "tokens"
    tokenized = True

    def __init__(
        self, path: str | os.PathLike, split: str = "train", n_clips: int = 1024, seed: int = 0
    ) -> None:
        self.root = Path(path).expanduser()
        self.folder = _split_folder(self.root, split)
        self._index = index = read_json(self.folder / "index.json", redo=_REDO, error=ConfigError)
        if index.get("format") != FORMAT:
            raise ConfigError(f"{SCHEME}: {self.folder / 'index.json'} is not a token-shard index; {_REDO}")
        if index["split"] != split:
            raise ConfigError(f"{SCHEME}: {self.folder} holds the {index['split']} split, not {split}")
        self.split, self.seed = split, seed
        self.grid = (int(index["rows"]), int(index["cols"]))
        self.frames = int(index["frames"])
        self.vocab_size = int(index["vocab_size"])
        self.tokenizer_fingerprint = index["tokenizer"]["fingerprint"]
        self.name = f"{SCHEME}-{index['source'].get('name', self.root.name)}"
        self.label_spec = tuple(LabelSpec.from_dict(s) for s in index["label_spec"])
        row = self.frames * self.grid[0] * self.grid[1]
        self._maps, self._starts = [], [0]
        for shard in index["shards"]:
            file = self.folder / shard["file"]
            expected = int(shard["clips"]) * row * np.dtype(index["dtype"]).itemsize
            size = file.stat().st_size if file.is_file() else -1
            if size != expected:
                have = "is missing" if size < 0 else f"holds {size:,} bytes"
                raise ConfigError(
                    f"{SCHEME}: {file} {have} but index.json says {shard['clips']} clips of {row} codes "
                    f"({expected:,} bytes): the shards and their index do not match; {_REDO}"
                )
            self._maps.append(
                np.memmap(file, dtype=index["dtype"], mode="r", shape=(int(shard["clips"]), row))
            )
            self._starts.append(self._starts[-1] + int(shard["clips"]))
        if self._starts[-1] != int(index["clips"]):
            raise ConfigError(
                f"{SCHEME}: the shards hold {self._starts[-1]} clips, index.json says {index['clips']}; {_REDO}"
            )
        self.n_clips = min(int(n_clips), int(index["clips"]))
        self._labels = read_safetensors(self.folder / "labels.safetensors", redo=_REDO, error=ConfigError,
                                        framework="numpy")  # fmt: skip

    @property
    def spec(self) -> dict[str, Any]:
        return {"name": SCHEME, "path": str(self.folder.resolve()), "split": self.split, "n_clips": self.n_clips,
                "made_from": self._index["source"], "tokenizer": self._index["tokenizer"]}  # fmt: skip

    def __len__(self) -> int:
        return self.n_clips

    def rows(self, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The codes (n, F·R·C) int64 and kind ids (n,) of clips (n,), read from the memory-mapped shards:
        only those rows are read, however large the shards (what a trainer's batch takes)."""
        clips = np.asarray(clips, dtype=np.int64)
        if clips.size and (clips.min() < 0 or clips.max() >= self.n_clips):
            raise IndexError(
                f"{self.name}: clips must lie in [0, {self.n_clips}), got {clips.min()} … {clips.max()}"
            )
        shard = np.searchsorted(self._starts, clips, side="right") - 1
        out = np.empty((clips.size, self.frames * self.grid[0] * self.grid[1]), dtype=np.int64)
        for s in np.unique(shard):
            at = np.flatnonzero(shard == s)
            out[at] = self._maps[s][clips[at] - self._starts[s]]
        if out.size and (out.min() < 0 or out.max() >= self.vocab_size):
            bad = clips[np.flatnonzero(((out < 0) | (out >= self.vocab_size)).any(1))[0]]
            raise ConfigError(
                f"{SCHEME}: clip {bad} of {self.folder} holds codes outside [0, {self.vocab_size}); {_REDO}"
            )
        return out, np.asarray(self._labels["kind"])[clips]

    def __getitem__(self, index: int) -> Clip:
        i = check_index(index, self.n_clips, self.name)
        s = int(np.searchsorted(self._starts, i, side="right")) - 1
        codes = self.rows(np.array([i]))[0][0]
        labels = {spec.name: self._labels[f"label.{spec.name}"][i] for spec in self.label_spec}
        return Clip(
            frames=None,
            codes=codes.reshape(self.frames, *self.grid),
            kind=KINDS[int(self._labels["kind"][i])],
            split=self.split,
            index=i,
            labels=labels,
            params={"source": SCHEME, "shard": self._index["shards"][s]["file"]},
        )


def check_tokenizer_match(source: ClipSource, tok: Any) -> None:
    """Refuse token shards made by another tokenizer than the one a model reads them with: the codes
    would mean other patches, and every number computed on them would be silently wrong."""
    made_by = getattr(source, "tokenizer_fingerprint", None)
    if made_by is not None and made_by != tokenizer_fingerprint(tok):
        name = source._index["tokenizer"].get("name", "another tokenizer")  # type: ignore[attr-defined]
        raise ConfigError(
            f"{source.name} was tokenized with {name} ({made_by}), not with {tok.spec.get('name')} "
            f"({tokenizer_fingerprint(tok)}) that this model reads; tokenize the clips again with its tokenizer"
        )


def write_token_shards(
    source: ClipSource, tok: Any, out: str | os.PathLike, *, shard_clips: int = SHARD_CLIPS,
    overwrite: bool = False, progress=None,
) -> Path:  # fmt: skip
    """Tokenize every clip of `source` with `tok` into `out/<split>/`; returns that folder.

    Shards are written one by one into `out/<split>.partial/` (each file renamed into place when whole),
    so an interrupted run continues at the first missing shard when started again with the same
    source and tokenizer; the finished folder appears atomically."""
    from safetensors.numpy import save_file

    from toto_lens.progress import report

    target = Path(out).expanduser() / source.split
    if target.exists() and not overwrite:
        raise ConfigError(f"{target} already exists; pass --overwrite to replace it")
    n, fingerprint = len(source), tokenizer_fingerprint(tok)
    rows, cols = (int(g) for g in tok.grid)
    dtype = "uint16" if tok.vocab_size <= 2**16 else "int32"
    request = {"source": source.spec, "tokenizer": fingerprint, "shard_clips": shard_clips, "clips": n}
    partial = target.with_name(f"{target.name}.partial")
    if partial.exists() and _read_request(partial) != json.loads(to_json(request, "request", ConfigError)):
        shutil.rmtree(partial)  # made from other clips or another tokenizer: nothing in it can be kept
    partial.mkdir(parents=True, exist_ok=True)
    (partial / "request.json").write_text(to_json(request, "request", ConfigError))
    specs = tuple(getattr(source, "label_spec", ()))
    labels: dict[str, list] = {"kind": [], **{f"label.{s.name}": [] for s in specs}}
    shards, frames = [], None
    for k, start in enumerate(range(0, n, shard_clips)):
        stop, file = min(start + shard_clips, n), partial / f"codes-{k:05d}.bin"
        have = file.is_file() and (partial / f"labels-{k:05d}.json").is_file()
        for lo in range(start, stop, ENCODE_CLIPS):
            if have:
                break
            clips = [source[i] for i in range(lo, min(lo + ENCODE_CLIPS, stop))]
            codes = np.stack([c.codes if c.frames is None else tok.encode(c.frames) for c in clips])
            frames = codes.shape[1]
            with open(file.with_suffix(".tmp"), "ab" if lo > start else "wb") as f:
                f.write(np.ascontiguousarray(codes.reshape(len(clips), -1), dtype=dtype).tobytes())
            _append_labels(partial / f"labels-{k:05d}.tmp.json", clips, specs, lo > start)
            report(progress, "tokenize", min(lo + ENCODE_CLIPS, stop), n, "clips")
        if not have:
            os.replace(file.with_suffix(".tmp"), file)
            os.replace(partial / f"labels-{k:05d}.tmp.json", partial / f"labels-{k:05d}.json")
        for key, values in json.loads((partial / f"labels-{k:05d}.json").read_text()).items():
            labels[key] += values
        shards.append({"file": file.name, "clips": stop - start})
    frames = frames or source[0].num_frames
    index = {"format": FORMAT, "format_version": 1, "split": source.split, "clips": n, "dtype": dtype,
             "frames": frames, "rows": rows, "cols": cols, "vocab_size": int(tok.vocab_size), "shards": shards,
             "label_spec": [s.to_dict() for s in specs], "source": {**source.spec, "name": source.name},
             "tokenizer": {"fingerprint": fingerprint, "name": tok.spec.get("name")}}  # fmt: skip
    arrays = {key: np.asarray(values, dtype=_dtype(key, specs)) for key, values in labels.items()}
    with atomic_folder(target, overwrite=overwrite, error=ConfigError) as tmp:
        for shard in shards:
            os.link(partial / shard["file"], tmp / shard["file"])
        save_file(arrays, str(tmp / "labels.safetensors"))
        save_file(
            {k: np.ascontiguousarray(v) for k, v in tok.state_dict().items()},
            str(tmp / "tokenizer.safetensors"),
        )
        (tmp / "tokenizer.json").write_text(to_json(tok.spec, "tokenizer spec", ConfigError))
        (tmp / "index.json").write_text(to_json(index, "token index", ConfigError))
    shutil.rmtree(partial)
    return target


def _read_request(folder: Path) -> Any:
    try:
        return json.loads((folder / "request.json").read_text())
    except (OSError, ValueError):
        return None


def _append_labels(path: Path, clips: list[Clip], specs: tuple[LabelSpec, ...], append: bool) -> None:
    data = json.loads(path.read_text()) if append else {"kind": [], **{f"label.{s.name}": [] for s in specs}}
    data["kind"] += [kind_code(c.kind) for c in clips]
    for s in specs:
        data[f"label.{s.name}"] += [np.asarray(c.labels[s.name]).tolist() for c in clips]
    path.write_text(json.dumps(data))


def _dtype(key: str, specs: tuple[LabelSpec, ...]) -> str:
    return "int8" if key == "kind" else next(s.dtype for s in specs if f"label.{s.name}" == key)
