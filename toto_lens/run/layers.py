"""Layer specs: which residual-stream layers to extract, in the words users type.

Layer l follows DESIGN.md: 0 is the token embeddings (the input of block 0), l ≥ 1 the residual stream
after block l (hook `blocks.{l-1}.hook_resid_post`). A model with L blocks has layers 0 … L.

    all        0 … L
    mid        L // 2 (the paper's probing curves peak near half depth)
    0,4,8      a list
    2:10:2     a Python slice over 0 … L (the stop is excluded); 2: and :4 work too
    -1         negative numbers count from the end: -1 is L, the last block
"""

from __future__ import annotations

from toto_lens.errors import ConfigError


class LayerSpecError(ConfigError):
    """A layer spec that cannot be read or names a layer the model does not have."""


def _hint(n_blocks: int) -> str:
    return (
        f"this model has layers 0…{n_blocks} (0 = token embeddings, {n_blocks} = last block); "
        "use all, mid, a list like 0,2, a slice like 1:4 or -1"
    )


def _layer(text: str, n_blocks: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise LayerSpecError(f"layer spec: {text!r} is not a layer number; {_hint(n_blocks)}") from None
    resolved = value + n_blocks + 1 if value < 0 else value
    if not 0 <= resolved <= n_blocks:
        raise LayerSpecError(f"layer {value} is out of range: {_hint(n_blocks)}")
    return resolved


def parse_layers(spec: str | int | list[int] | tuple[int, ...], n_blocks: int) -> list[int]:
    """Sorted, distinct layer numbers in 0 … n_blocks named by `spec` (see the module docstring)."""
    if isinstance(spec, int):
        spec = str(spec)
    if isinstance(spec, list | tuple):
        spec = ",".join(str(int(s)) for s in spec)
    parts = [p.strip() for p in str(spec).split(",")]
    if not any(parts):
        raise LayerSpecError(f"layer spec is empty; {_hint(n_blocks)}")
    out: set[int] = set()
    for part in parts:
        if not part:
            raise LayerSpecError(f"layer spec {spec!r} has an empty item; {_hint(n_blocks)}")
        if part == "all":
            out.update(range(n_blocks + 1))
        elif part == "mid":
            out.add(n_blocks // 2)
        elif ":" in part:
            out.update(_slice(part, n_blocks))
        else:
            out.add(_layer(part, n_blocks))
    return sorted(out)


def _slice(part: str, n_blocks: int) -> list[int]:
    fields = part.split(":")
    if len(fields) > 3:
        raise LayerSpecError(f"layer slice {part!r} has too many colons; {_hint(n_blocks)}")
    values: list[int | None] = []
    for f in fields:
        try:
            values.append(int(f) if f.strip() else None)
        except ValueError:
            raise LayerSpecError(f"layer slice {part!r}: {f!r} is not a number; {_hint(n_blocks)}") from None
    start, stop, step = [*values, None, None][:3]
    if step == 0:
        raise LayerSpecError(f"layer slice {part!r} has step 0; {_hint(n_blocks)}")
    for bound in (start, stop):
        if bound is not None and not -(n_blocks + 1) <= bound <= n_blocks + 1:
            raise LayerSpecError(f"layer slice {part!r} reaches outside the model: {_hint(n_blocks)}")
    layers = list(range(n_blocks + 1))[slice(start, stop, step)]
    if not layers:
        raise LayerSpecError(f"layer slice {part!r} selects no layer; {_hint(n_blocks)}")
    return layers
