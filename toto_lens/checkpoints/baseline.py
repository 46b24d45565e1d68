"""Untrained checkpoints (`toto-lens init`): the baseline every probing curve needs, and `describe`.

A variant's untrained checkpoint records a tokenizer and a data mix that fit it, so that `toto-lens
extract --ckpt NAME` runs as written; `init --like RUN` mirrors a trained run with fresh weights.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from toto_lens.checkpoints.folder import CONFIG, Checkpoint, checkpoint_path, load_checkpoint, save_checkpoint
from toto_lens.config import ModelConfig
from toto_lens.errors import CheckpointError, ConfigError
from toto_lens.paths import is_bare_name


def init_checkpoint(
    path: str | os.PathLike,
    *,
    model: str | ModelConfig | None = None,
    like: str | os.PathLike | None = None,
    seed: int = 0,
    overwrite: bool = False,
    tokenizer: str | None = None,
    data: str | None = None,
    trust_code: bool = False,
    progress=None,
) -> Path:
    """Save an untrained checkpoint: the baseline every probing curve needs (`toto-lens init`).

    `model` names a variant (or is a config); `like` mirrors a checkpoint instead: its exact config,
    tokenizer and training data with fresh weights, so extraction and the analyses treat both alike.

    A variant records what `extract` needs, so that `extract --ckpt NAME` runs as it is: the data
    (default: the trainer's mix, `DEFAULT_DATA`) and a tokenizer (default: `variant_tokenizer`, a random
    codebook fitted in seconds; a name or folder as `load_tokenizer` takes; "none" records none). Every
    argument is checked before the tokenizer is fitted and the weights are drawn (and before torch is
    imported).
    """
    from toto_lens.io import check_writable

    if (model is None) == (like is None):
        raise ConfigError("give either a model variant (--model) or a checkpoint to mirror (--like)")
    if like is not None and (tokenizer is not None or data is not None):
        raise ConfigError(
            "--like copies the tokenizer and data of the checkpoint it mirrors; drop --tokenizer/--data"
        )
    target = checkpoint_path(path)
    if (target / CONFIG).exists() and not overwrite:
        raise CheckpointError(f"checkpoint {target} already exists; pass --overwrite to replace it")
    check_writable(
        target, "--name (a folder path) or TOTO_LENS_CACHE" if is_bare_name(str(path)) else "--name"
    )
    training: dict[str, Any] = {"steps": 0, "seed": seed, "init": "random"}
    tok_spec, tok_state = None, None
    if like is not None:
        source = load_checkpoint(like, trust_code=trust_code)
        config, tok_spec, tok_state = source.config, source.tokenizer, source.tokenizer_state or None
        training["like"] = {"name": source.name, "sha256": source.sha256}
        if source.training.get("config"):  # what extract reads for its default data
            training["config"] = source.training["config"]
    else:
        config = model if isinstance(model, ModelConfig) else ModelConfig.from_name(model)
        tok_spec, tok_state, data = _variant_inputs(config, tokenizer, data, trust_code, progress)
        if data is not None:
            training["config"] = {"data": data, "data_seed": 0}
    import torch

    from toto_lens.model import Toto

    torch.manual_seed(seed)
    return save_checkpoint(
        Toto(config), path, tokenizer=tok_spec, tokenizer_state=tok_state, training=training,
        overwrite=overwrite,
    )  # fmt: skip


def variant_tokenizer(config: ModelConfig, data: str) -> str:
    """The tokenizer `init` records for a model: a random codebook (appendix A.4: any vocabulary without
    training, fitted in seconds) with exactly the model's visual codes, and the smallest patch whose
    clips of the data's first source fit the context. The paper's variants (8,192 codes, 4,098 tokens)
    get `random-8192-p2`: 16 frames of 16×16 tokens, the paper's layout; the CPU ones get `random-512`."""
    from toto_lens.data import Layout, open_source
    from toto_lens.data.mix import parse_mix
    from toto_lens.tokenizers.named import BUNDLED_SIZE

    first = next(iter(parse_mix(data)))
    source = open_source(first, split="val", n_clips=1)
    if getattr(source, "tokenized", False):  # token shards keep the tokenizer that made them beside them
        return str(source.folder)
    clip = source[0]
    if clip.channels != 1:
        raise ConfigError(
            f"the clips of {first} are in colour but the named tokenizers fit grey frames; fit one on them "
            f"(toto-lens tokenizer fit --data {first} …) and name it with --tokenizer, or add ?mode=grey"
        )
    frames, h, w = clip.frames.shape[:3]
    if (h, w) != (BUNDLED_SIZE, BUNDLED_SIZE):
        raise ConfigError(
            f"the clips of {first} are {h}×{w} but the named tokenizers fit {BUNDLED_SIZE}×{BUNDLED_SIZE} "
            "frames; name a tokenizer for them with --tokenizer (or --tokenizer none)"
        )
    for patch in (p for p in range(1, h + 1) if h % p == 0):
        if Layout.for_model(frames, h // patch, w // patch, config).length <= config.context_length:
            return f"random-{config.num_codes}" + ("" if patch == 4 else f"-p{patch}")
    raise ConfigError(
        f"no patch size puts {frames} frames of {first} into a context of {config.context_length}"
    )


def _variant_inputs(config: ModelConfig, tokenizer, data, trust_code: bool, progress):
    """(tokenizer spec, state, data) for `init --model`, every name checked before anything is fitted."""
    from toto_lens.data import Layout, check_source, open_source
    from toto_lens.data.mix import DEFAULT_DATA, parse_mix
    from toto_lens.tokenizers import load_tokenizer
    from toto_lens.tokenizers.named import check_tokenizer

    data = DEFAULT_DATA if data is None else data
    data = None if data.strip().lower() == "none" else data
    for name in parse_mix(data) if data else ():
        check_source(name)
    if tokenizer is not None and tokenizer.strip().lower() == "none":
        return None, None, data
    if tokenizer is None:
        if data is None:
            raise ConfigError(
                "--data none records no clips to size a tokenizer on; name one with --tokenizer"
            )
        tokenizer = variant_tokenizer(config, data)
    check_tokenizer(tokenizer, trust_code=trust_code)
    tok = load_tokenizer(tokenizer, trust_code=trust_code, progress=progress)
    if tok.vocab_size > config.num_codes:
        raise ConfigError(
            f"tokenizer {tokenizer} has {tok.vocab_size} codes but {config.name} holds {config.num_codes}"
        )
    if data is not None:
        clip = open_source(next(iter(parse_mix(data))), split="val", n_clips=1)[0]
        length = Layout.for_model(clip.num_frames, *tok.grid, config).length
        if length > config.context_length:
            raise ConfigError(
                f"clips of {length} tokens ({tokenizer}) do not fit {config.name}'s context of {config.context_length}"
            )
    return tok.spec, tok.state_dict(), data


def describe(ckpt: Checkpoint) -> dict[str, Any]:
    """What `toto-lens info` shows: path, sha256, parameters, layers, vocabulary, config, tokenizer, training."""
    c = ckpt.config
    return {
        "name": ckpt.name,
        "path": str(ckpt.path),
        "sha256": ckpt.sha256,
        "params": sum(p.numel() for p in ckpt.model.parameters()),
        "n_layers": c.n_layers,
        "vocab_size": c.vocab_size,
        "config": c.to_dict(),
        "tokenizer": ckpt.tokenizer,
        "tokenizer_summary": tokenizer_summary(ckpt.tokenizer),
        "data": (ckpt.training.get("config") or {}).get("data"),
        "training": ckpt.training,
        "toto_lens_version": ckpt.meta.get("toto_lens_version"),
        "created": ckpt.meta.get("created"),
    }


def tokenizer_summary(spec: dict[str, Any] | None) -> str:
    """One line about a tokenizer spec: name, kind, codes, patch and grid, and the code it would import."""
    from toto_lens.tokenizers.registry import code_named_by

    if not spec:
        return "none recorded (extract needs --tokenizer)"
    parts = [str(spec.get("name") or spec.get("kind")), f"kind {spec.get('kind')}"]
    if "vocab_size" in spec:
        parts.append(f"{spec['vocab_size']:,} codes")
    if "patch" in spec:
        grid = spec.get("grid")
        parts.append(
            f"{spec['patch']}×{spec['patch']} patches" + (f", {grid[0]}×{grid[1]} a frame" if grid else "")
        )
    code = code_named_by(spec)
    if code:
        parts.append(f"imports {code} (needs --trust-code)")
    return ", ".join(parts)
