"""The cache schema (docs/cache-schema.md) as code: which arrays a request makes, their dims and chunks.

One `VarSpec` per zarr array. Everything is chunked by the write batch along `clip` and by one layer
along `layer`, whole along the rest, so that a batch is written as whole chunks by exactly one process
and reading one layer of one variable touches only its chunks. Per-clip labels are coordinates, listed
in each data variable's `coordinates` attribute, which is how xarray finds them in a zarr store. Which
labels there are, their dims and their class names come from the source's label spec
(`toto_lens.data.labels`): the schema names none of them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from toto_lens.data.labels import KIND_LABEL, LabelSpec, kind_code
from toto_lens.errors import ConfigError

SCHEMA_VERSION = 2  # 2: chunk checksums (crc32c), a manifest of the chunks, attributes as JSON text
ACTS = ("pooled", "frame", "token")
ATTN = ("frame", "pattern")
DTYPES = ("float16", "float32")
AUTOCAST = ("float32", "bfloat16", "float16")  # torch.autocast dtypes of the forward pass
PER_CLIP_CHUNKS = ("acts_token", "attn_pattern")
# coordinates that are not dimensions: xarray finds them through each data variable's `coordinates`
STATIC_COORDS = ("depth", "pos_frame", "row", "col")
# How close two extractions of the same clips with the same request are guaranteed to be, per storage
# dtype, as numpy's (rtol, atol): docs/cache-schema.md, "Reproducibility". On one CPU machine they were
# bitwise equal (1 or 2 threads, idle or loaded); the bound covers BLAS kernels that split work by thread
# count or load, and GPUs, where a resumed store may mix batches computed either way.
REPRODUCIBLE = {"float32": (1e-5, 1e-6), "float16": (1e-3, 1e-4)}
ZSTD_LEVEL = 0  # zarr's default compression; the checksum comes after it, over the compressed bytes


def compressors() -> list:
    """Every array's bytes-to-bytes codecs: Zstd, then a crc32c checksum of the compressed chunk, so that
    a flipped byte or a truncated file is caught on read (by zarr, and by `integrity.CheckedStore` with
    the chunk's name) instead of decoding to wrong numbers."""
    from zarr.codecs import Crc32cCodec, ZstdCodec

    return [ZstdCodec(level=ZSTD_LEVEL), Crc32cCodec()]


@dataclass(frozen=True)
class ExtractRequest:
    """What to extract; stored in the store's attributes, and a resumed run must ask for the same."""

    layers: tuple[int, ...]
    acts: tuple[str, ...] = ("pooled", "frame")
    attn: tuple[str, ...] = ()
    token_clips: int = 0
    pattern_clips: int = 0
    dtype: str = "float16"
    batch_size: int = 16
    autocast: str = "float32"  # compute dtype of the forward pass (bfloat16 on GPUs); storage is `dtype`

    def __post_init__(self) -> None:
        for what, given, allowed in (("acts", self.acts, ACTS), ("attn", self.attn, ATTN)):
            bad = [x for x in given if x not in allowed]
            if bad:
                raise ConfigError(
                    f"--{what}: unknown {', '.join(map(repr, bad))}; choose from {', '.join(allowed)}"
                )
        if self.dtype not in DTYPES:
            hint = "; to compute in bfloat16 pass --autocast bfloat16" if self.dtype == "bfloat16" else ""
            raise ConfigError(
                f"--dtype must be one of {', '.join(DTYPES)} (the storage dtype of activations), got "
                f"{self.dtype!r}{hint}"
            )
        if self.autocast not in AUTOCAST:
            raise ConfigError(f"--autocast must be one of {', '.join(AUTOCAST)}, got {self.autocast!r}")
        if self.batch_size <= 0 or self.token_clips < 0 or self.pattern_clips < 0:
            raise ConfigError("--batch-size must be positive and --token-clips, --pattern-clips not negative")

    def to_dict(self) -> dict[str, Any]:
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        if out["autocast"] == "float32":  # as stores written before the option say it: they still resume
            del out["autocast"]
        return out


@dataclass(frozen=True)
class Shape:
    """Sizes of every dimension of one store."""

    clip: int
    layers: tuple[int, ...]
    n_blocks: int
    frames: int
    rows: int
    cols: int
    feature: int
    head: int
    image: tuple[int, int]
    labels: tuple[LabelSpec, ...] = ()
    label_sizes: tuple[
        tuple[str, int], ...
    ] = ()  # sizes of the label dims, e.g. (("object", 2), ("axis", 2))

    @property
    def position(self) -> int:
        return self.frames * self.rows * self.cols + 2

    def sizes(self) -> dict[str, int]:
        p, f = self.position, self.frames
        return {
            **dict(self.label_sizes),
            "clip": self.clip,
            "layer": len(self.layers),
            "position": p,
            "frame": f,
            "feature": self.feature,
            "head": self.head,
            "qframe": f,
            "kframe": f,
            "qpos": p,
            "kpos": p,
            "y": self.image[0],
            "x": self.image[1],
        }


@dataclass(frozen=True)
class VarSpec:
    name: str
    dims: tuple[str, ...]
    dtype: str
    written_clips: int  # clips whose chunks are written; the rest stay fill (no disk)
    fill: Any = None
    coordinates: tuple[str, ...] = field(default=())
    attrs: dict[str, Any] = field(default_factory=dict)

    def shape(self, shape: Shape) -> tuple[int, ...]:
        sizes = shape.sizes()
        return tuple(sizes[d] for d in self.dims)

    def clip_chunk(self, batch: int) -> int:
        """Clips per chunk: the write batch, or one clip for the per-token arrays, whose chunks are large
        (toto-large: 4096 positions × 1024 features) and usually read a few clips at a time."""
        return 1 if self.name in PER_CLIP_CHUNKS else batch

    def chunks(self, shape: Shape, batch: int) -> tuple[int, ...]:
        sizes = shape.sizes()
        clip = self.clip_chunk(batch)
        return tuple(clip if d == "clip" else 1 if d == "layer" else sizes[d] for d in self.dims)

    def nbytes(self, shape: Shape) -> int:
        """Uncompressed bytes of the written part."""
        full = self.shape(shape)
        per_clip = math.prod(full[1:]) if self.dims[0] == "clip" else math.prod(full)
        clips = self.written_clips if self.dims[0] == "clip" else 1
        if self.name.startswith("attn_") and 0 in shape.layers:  # layer 0 has no attention: never written
            per_clip = per_clip // len(shape.layers) * (len(shape.layers) - 1)
        return per_clip * clips * np.dtype(self.dtype).itemsize


def data_variables(
    request: ExtractRequest, clips: int, label_spec: tuple[LabelSpec, ...], masks: bool = True
) -> list[VarSpec]:
    """The arrays a request writes, per docs/cache-schema.md; `masks` where the source has object masks."""
    labels = (*(s.name for s in label_spec), *STATIC_COORDS)
    act = request.dtype
    nan = float("nan")
    specs = [
        VarSpec("tokens", ("clip", "position"), "int32", clips, 0, labels),
        VarSpec("loss", ("clip", "position"), "float32", clips, nan, labels, {"units": "nats"}),
        VarSpec("complete", ("clip",), "uint8", clips, 0, labels),
    ]
    if masks:
        specs.insert(2, VarSpec("masks", ("clip", "frame", "y", "x"), "uint8", clips, 0, labels))
    if "pooled" in request.acts:
        specs.append(VarSpec("acts_pooled", ("clip", "layer", "feature"), act, clips, nan, labels))
    if "frame" in request.acts:
        specs.append(VarSpec("acts_frame", ("clip", "layer", "frame", "feature"), act, clips, nan, labels))
    if "token" in request.acts:
        dims = ("clip", "layer", "position", "feature")
        specs.append(VarSpec("acts_token", dims, act, min(clips, request.token_clips), nan, labels))
    if "frame" in request.attn:
        dims = ("clip", "layer", "head", "qframe", "kframe")
        specs.append(VarSpec("attn_frame", dims, "float32", clips, nan, labels))
    if "pattern" in request.attn:
        dims = ("clip", "layer", "head", "qpos", "kpos")
        specs.append(VarSpec("attn_pattern", dims, "float16", min(clips, request.pattern_clips), nan, labels))
    if "layer" not in used_dims(specs):  # no activations, no attention: no layer dimension, no depth
        without = tuple(c for c in labels if c != "depth")
        specs = [VarSpec(s.name, s.dims, s.dtype, s.written_clips, s.fill, without, s.attrs) for s in specs]
    return specs


def label_variables(shape: Shape) -> list[VarSpec]:
    """One coordinate array along `clip` per declared label, with its flag meanings."""
    return [VarSpec(s.name, ("clip", *s.dims), s.dtype, shape.clip, 0, (), s.attrs()) for s in shape.labels]


def used_dims(specs: list[VarSpec]) -> set[str]:
    """Dimensions some array uses: a store without attention has no head, qframe, kframe, qpos, kpos."""
    return {d for spec in specs for d in spec.dims}


def static_coordinates(
    shape: Shape, pos_frame, row, col, dims: set[str] | None = None
) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
    """Coordinates known before any clip is seen, written once at creation; only those of `dims` (the
    dimensions the store's arrays use) when given."""
    sizes = shape.sizes()
    index = {d: np.arange(sizes[d]) for d in ("position", "frame", "head", "feature", "qframe", "kframe")}
    index.update({d: np.arange(sizes[d]) for d in ("qpos", "kpos", "y", "x", *dict(shape.label_sizes))})
    coords = {d: ((d,), v) for d, v in index.items()}
    coords["clip"] = (("clip",), np.arange(shape.clip))
    coords["layer"] = (("layer",), np.array(shape.layers))
    coords["depth"] = (("layer",), np.array(shape.layers, dtype=np.float64) / shape.n_blocks)
    for name, values in (("pos_frame", pos_frame), ("row", row), ("col", col)):
        coords[name] = (("position",), np.asarray(values, dtype=np.int64))
    if dims is not None:
        coords = {k: v for k, v in coords.items() if set(v[0]) <= dims}
    return coords


def clip_labels(clips: list, label_spec: tuple[LabelSpec, ...]) -> dict[str, np.ndarray]:
    """Label arrays of a batch of `Clip`s, one per declared label (leading dim = clip)."""

    def value(clip, name: str):  # every clip has a kind, declared as a label or not
        return kind_code(clip.kind) if name == "kind" and name not in clip.labels else clip.labels[name]

    return {
        s.name: np.stack([np.asarray(value(c, s.name), dtype=s.dtype) for c in clips]) for s in label_spec
    }


def with_kind(label_spec: tuple[LabelSpec, ...]) -> tuple[LabelSpec, ...]:
    """A source's label spec with the `kind` label every store holds, first."""
    return label_spec if any(s.name == "kind" for s in label_spec) else (KIND_LABEL, *label_spec)
