"""Label specs: what a source says about the labels its clips carry, so the store can lay them out.

A source declares one `LabelSpec` per label (name, the dims after `clip`, dtype, and for a categorical
label the meaning of each code); every clip it yields carries `clip.labels[name]` of that shape. The
store writes each label as a coordinate along `clip` with CF `flag_values` / `flag_meanings`, and knows
no label by name: a user's source brings its own. `kind` (video or images) is the one label every
clip has; its codes live here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from toto_lens.errors import ConfigError

KINDS = ("video", "images")  # `kind` label codes: 0 video, 1 images


def kind_code(kind: str) -> int:
    if kind not in KINDS:
        raise ConfigError(f"unknown clip kind {kind!r}; choose one of: {', '.join(KINDS)}")
    return KINDS.index(kind)


@dataclass(frozen=True)
class LabelSpec:
    """One label of a source's clips: `clip.labels[name]` has `len(dims)` axes named `dims`."""

    name: str
    dims: tuple[str, ...] = ()
    dtype: str = "int64"
    flag_meanings: tuple[str, ...] = ()  # code i means flag_meanings[i] (a categorical label)
    long_name: str = ""

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ConfigError(f"label name {self.name!r} must be an identifier (letters, digits, _)")
        if "clip" in self.dims or "position" in self.dims:
            raise ConfigError(f"label {self.name!r}: dims are those after `clip` and cannot name position")

    def attrs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"long_name": self.long_name} if self.long_name else {}
        if self.flag_meanings:
            out["flag_values"] = list(range(len(self.flag_meanings)))
            out["flag_meanings"] = " ".join(self.flag_meanings)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dims": list(self.dims), "dtype": self.dtype,
                "flag_meanings": list(self.flag_meanings), "long_name": self.long_name}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabelSpec:
        return cls(data["name"], tuple(data.get("dims", ())), data.get("dtype", "int64"),
                   tuple(data.get("flag_meanings", ())), data.get("long_name", ""))  # fmt: skip


KIND_LABEL = LabelSpec("kind", (), "int8", KINDS, "clip kind")


def label_sizes(specs: tuple[LabelSpec, ...], labels: dict[str, Any]) -> dict[str, int]:
    """Sizes of the label dims, read off one clip's labels; a label missing or of the wrong rank fails."""
    sizes: dict[str, int] = {}
    for spec in specs:
        if spec.name not in labels:
            raise ConfigError(f"a clip lacks its source's declared label {spec.name!r}")
        shape = np.shape(labels[spec.name])
        if len(shape) != len(spec.dims):
            raise ConfigError(f"label {spec.name!r} has shape {shape}, its spec says dims {spec.dims}")
        for dim, size in zip(spec.dims, shape, strict=True):
            if sizes.setdefault(dim, size) != size:
                raise ConfigError(
                    f"label dim {dim!r} is {sizes[dim]} in one label and {size} in {spec.name!r}"
                )
    return sizes
