"""What an extraction will do, decided before any forward pass: `prepare` checks every cheap piece
(tokenizer, data source, clips, layers, that the clips fit the model) before anything expensive is built
or fitted, and returns the `ExtractPlan` that a dry run prints and `extract` carries out."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from toto_lens.errors import ConfigError
from toto_lens.run.layers import parse_layers
from toto_lens.store.schema import (
    ExtractRequest,
    Shape,
    data_variables,
    label_variables,
    with_kind,
)
from toto_lens.store.writer import now, schema_attrs

DEFAULT_CLIPS = 512


@dataclass
@dataclass
class ExtractPlan:
    """Everything decided before the first forward pass; a dry run prints it and stops."""

    path: Path
    dataset: str
    shape: Shape
    request: ExtractRequest
    variables: list  # VarSpec of data variables and labels

    def sizes(self) -> dict[str, int]:
        return {v.name: v.nbytes(self.shape) for v in self.variables}

    @property
    def n_batches(self) -> int:
        return -(-self.shape.clip // self.request.batch_size)


def prepare(
    ckpt,
    *,
    data: str | None,
    split: str,
    clips: int | None,
    batch_size: int,
    out: str | os.PathLike | None,
    layers: str,
    acts: tuple[str, ...],
    token_clips: int | None,
    attn: tuple[str, ...],
    pattern_clips: int,
    dtype: str,
    autocast: str = "float32",
    tokenizer: str | None = None,
):
    """(plan, source, tokenizer, layout, attrs) for a loaded checkpoint; touches no store.

    Every check that costs nothing (a tokenizer at all, the data source and its clips, the layers and
    options, the tokenizer's size and the layout against the model, from the tokenizer's name or spec)
    comes before building the tokenizer, which for a named one not fitted yet takes minutes."""
    from toto_lens.checkpoints import training_data
    from toto_lens.data import open_source
    from toto_lens.data.labels import label_sizes
    from toto_lens.data.sources.tokens import check_tokenizer_match
    from toto_lens.paths import cache_root
    from toto_lens.tokenizers import check_channels, load_tokenizer, tokenizer_from_spec

    if tokenizer is None and not ckpt.tokenizer:
        raise ConfigError(
            "this checkpoint records no tokenizer; name one with --tokenizer (e.g. kmeans-512), or make "
            "an untrained baseline with `toto-lens init --like RUN`, which records the run's"
        )
    source_name, seed = (data, 0) if data else training_data(ckpt.training)
    if data and ckpt.training.get("config"):
        seed = int(ckpt.training["config"].get("data_seed", 0))
    n = DEFAULT_CLIPS if clips is None else clips
    if n <= 0:
        raise ConfigError(f"--clips must be positive, got {n}")
    source = open_source(source_name, split=split, n_clips=n, seed=seed)
    n = min(n, len(source))
    first = source[0]
    request = ExtractRequest(
        layers=tuple(parse_layers(layers, ckpt.config.n_layers)),
        acts=tuple(acts),
        attn=tuple(attn),
        token_clips=n if token_clips is None else min(token_clips, n),
        pattern_clips=min(pattern_clips, n) if "pattern" in attn else 0,
        dtype=dtype,
        autocast=autocast,
        batch_size=batch_size,
    )
    image = tuple(first.frames.shape[1:3]) if first.frames is not None else ()
    expected = _tokenizer_facts(tokenizer, ckpt.tokenizer, image)
    if expected is not None:  # the same checks as below, before a fit that may take minutes
        _check_fit(ckpt.config, first.num_frames, *expected)
    if tokenizer is not None:
        tok = load_tokenizer(tokenizer, trust_code=getattr(ckpt, "trust_code", False))
    else:
        tok = tokenizer_from_spec(
            ckpt.tokenizer, ckpt.tokenizer_state, trust_code=getattr(ckpt, "trust_code", False)
        )
    check_tokenizer_match(source, tok)
    check_channels(first, tok, source_name)
    layout = _check_fit(ckpt.config, first.num_frames, tok.vocab_size, tuple(tok.grid))
    labels = with_kind(tuple(getattr(source, "label_spec", ())))
    sizes = label_sizes(tuple(s for s in labels if s.name in first.labels), first.labels)
    shape = Shape(
        clip=n,
        layers=request.layers,
        n_blocks=ckpt.config.n_layers,
        frames=layout.frames,
        rows=layout.rows,
        cols=layout.cols,
        feature=ckpt.config.dim,
        head=ckpt.config.n_heads,
        image=image if first.masks is not None else (0, 0),
        labels=labels,
        label_sizes=tuple(sizes.items()),
    )
    name = getattr(source, "name", str(source_name))
    dataset = f"{name}-{split}"
    path = Path(out) if out else cache_root() / ckpt.name / f"{dataset}.zarr"
    variables = data_variables(request, n, labels, masks=first.masks is not None) + label_variables(shape)
    attrs = schema_attrs(
        checkpoint={"name": ckpt.name, "path": str(ckpt.path), "sha256": ckpt.sha256},
        model_config=ckpt.config.to_dict(),
        tokenizer=tok.spec,
        dataset={
            "name": dataset,
            "source": name,
            "split": split,
            "clips": n,
            "seed": seed,
            "spec": source.spec,
        },
        layout={"frames": layout.frames, "rows": layout.rows, "cols": layout.cols, "length": layout.length},
        request=request.to_dict(),
        created=now(),
    )
    return ExtractPlan(path, dataset, shape, request, variables), source, tok, layout, attrs


def _tokenizer_facts(name: str | None, spec: dict | None, image: tuple[int, ...]):
    """(vocab size, grid) of a tokenizer known without building it: from a named fit's name (`kmeans-N`,
    `random-N`: 4×4 patches of the source's frames), a tokenizer folder's spec, or the checkpoint's spec;
    None when unknown (then only the built tokenizer is checked)."""
    from toto_lens.tokenizers.named import DEFAULT_PATCH, NAME

    if name is not None:
        folder = Path(name).expanduser()
        if (folder / "tokenizer.json").is_file():
            try:
                import json

                spec = json.loads((folder / "tokenizer.json").read_text())
            except (OSError, ValueError):
                return None
        elif (match := NAME.match(str(name))) and len(image) == 2:
            patch = int(match["patch"] or DEFAULT_PATCH)
            return int(match["vocab"]), (image[0] // patch, image[1] // patch)
        else:
            return None
    try:
        patch = int(spec["patch"])
        size = spec["image_size"]
        return int(spec["vocab_size"]), (int(size[0]) // patch, int(size[1]) // patch)
    except (KeyError, TypeError, ValueError, IndexError):
        return None


def _check_fit(config, frames: int, vocab: int, grid: tuple[int, int]):
    """The layout of `frames` frames of `grid` tokens, refused when the tokenizer or the clips do not fit
    the model."""
    from toto_lens.data import Layout

    if vocab > config.num_codes:
        raise ConfigError(
            f"the tokenizer has {vocab} codes but the model's vocabulary holds "
            f"{config.num_codes}; use the tokenizer it was trained with"
        )
    layout = Layout.for_model(frames, *grid, config)
    if layout.length > config.context_length:
        raise ConfigError(
            f"clips of {layout.length} tokens do not fit the model's context of {config.context_length}"
        )
    return layout
