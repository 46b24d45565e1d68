"""Checkpoints on disk and the registry of named checkpoints.

A checkpoint is a folder:

    model.safetensors       the weights, under the model's parameter names
    config.json             {"format", "format_version", "model": ModelConfig, "tokenizer": spec or null,
                             "training": metadata, "weights_sha256", "toto_lens_version", "created"}
    tokenizer.safetensors   tokenizer state (codebooks …), only when the tokenizer has any

Only safetensors and JSON are read: nothing is unpickled. A save is atomic (written into a hidden
temporary folder beside the target, then renamed), so a crash never leaves half a checkpoint.

Names resolve under `<cache>/checkpoints/<name>/` (`toto_lens.paths.cache_root`).

A checkpoint is data: one whose tokenizer spec names Python code to import (an `external` factory) is
refused unless loaded with `trust_code=True` (`--trust-code`), as transformers' `trust_remote_code`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toto_lens.config import ModelConfig
from toto_lens.errors import CheckpointError, ConfigError
from toto_lens.io import atomic_folder, read_json, read_safetensors, to_json
from toto_lens.paths import cache_root, is_bare_name

if TYPE_CHECKING:
    import torch

    from toto_lens.model import Toto

FORMAT = "toto-lens-checkpoint"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
TOKENIZER_STATE = "tokenizer.safetensors"
REDO = "the checkpoint is incomplete or damaged: save it again"


def checkpoints_dir() -> Path:
    return cache_root() / "checkpoints"


def list_checkpoints() -> list[str]:
    """Names of the complete checkpoints in the registry."""
    root = checkpoints_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if not p.name.startswith(".") and (p / CONFIG).is_file())


def resolve_checkpoint(name_or_path: str | os.PathLike) -> Path:
    """A checkpoint folder from a path to one, or a name in the registry."""
    path = Path(name_or_path).expanduser()
    if (path / CONFIG).is_file() or (path / WEIGHTS).is_file():
        return path
    text = str(name_or_path)
    named = checkpoints_dir() / text
    if is_bare_name(text) and ((named / CONFIG).is_file() or (named / WEIGHTS).is_file()):
        return named
    existing = list_checkpoints()
    known = ", ".join(existing) if existing else "none yet"
    where = path if path.exists() else f"{path} or {named}"
    name = Path(text).name or "NAME"
    raise CheckpointError(
        f"no checkpoint {text!r} (looked for {where}/{CONFIG}); checkpoints in {checkpoints_dir()}: {known}; "
        f"make one with `toto-lens init --model {variant_for(name)} --name {name}`"
    )


def variant_for(name: str) -> str:
    """The variant a checkpoint name suggests (`toto-large`, `toto-large-init` → toto-large), else toto-tiny."""
    from toto_lens.config import variants

    names = sorted(variants(), key=len, reverse=True)
    return next((v for v in names if name == v or name.startswith(f"{v}-")), "toto-tiny")


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model and everything saved beside it."""

    model: Toto
    config: ModelConfig
    path: Path
    sha256: str
    tokenizer: dict[str, Any] | None = None
    tokenizer_state: dict[str, torch.Tensor] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    trust_code: bool = False  # loaded with trust_code=True: its tokenizer may import the code it names

    @property
    def name(self) -> str:
        return self.path.name

    def load_tokenizer(self):
        """The tokenizer this checkpoint records (spec and state), or None when it records none."""
        from toto_lens.tokenizers import tokenizer_from_spec

        if not self.tokenizer:
            return None
        return tokenizer_from_spec(self.tokenizer, self.tokenizer_state, trust_code=self.trust_code)


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def save_checkpoint(
    model: Toto,
    path: str | os.PathLike,
    *,
    tokenizer: dict[str, Any] | None = None,
    tokenizer_state: dict[str, torch.Tensor] | None = None,
    training: dict[str, Any] | None = None,
    overwrite: bool = False,
    weights: dict[str, torch.Tensor] | None = None,
    extras: dict[str, dict[str, torch.Tensor]] | None = None,
    files: dict[str, str] | None = None,
) -> Path:
    """Write `model` (and tokenizer spec/state, training metadata) as a checkpoint folder at `path`.

    A bare name (no path separator) is saved into the registry, `<cache>/checkpoints/<name>`.
    Refuses an existing checkpoint unless overwrite=True. Returns the folder.

    weights: the state dict to save instead of `model.state_dict()` (a distributed run passes the
    gathered full state). extras: more tensors, one `<name>.safetensors` each (the trainer's optimizer
    state). files: text files written beside them (the training log).
    """
    from safetensors.torch import save_file

    from toto_lens import __version__

    target = checkpoint_path(path)
    with atomic_folder(target, overwrite=overwrite, error=CheckpointError) as tmp:
        save_file(_cpu(weights or model.state_dict()), str(tmp / WEIGHTS), metadata={"format": FORMAT})
        if tokenizer_state:
            save_file(_cpu(tokenizer_state), str(tmp / TOKENIZER_STATE))
        for name, tensors in (extras or {}).items():
            save_file(_cpu(tensors), str(tmp / f"{name}.safetensors"))
        for name, text in (files or {}).items():
            (tmp / name).write_text(text)
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model": model.config.to_dict(),
            "tokenizer": tokenizer,
            "training": training or {},
            "weights_sha256": file_sha256(tmp / WEIGHTS),
            "toto_lens_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        (tmp / CONFIG).write_text(to_json(meta, "checkpoint metadata", CheckpointError))
    return target


def _cpu(tensors: dict[str, Any]) -> dict[str, torch.Tensor]:
    import torch

    return {k: torch.as_tensor(v).detach().contiguous().cpu() for k, v in tensors.items()}


def read_extra(folder: str | os.PathLike, name: str) -> dict[str, torch.Tensor]:
    """The tensors `save_checkpoint(extras={name: …})` wrote into a checkpoint folder."""
    return read_safetensors(Path(folder) / f"{name}.safetensors", redo=REDO, error=CheckpointError)


def checkpoint_path(path: str | os.PathLike) -> Path:
    if is_bare_name(str(path)):
        return checkpoints_dir() / str(path)
    return Path(path).expanduser()


def read_metadata(folder: Path) -> dict[str, Any]:
    """config.json of a checkpoint folder, checked for the fields every reader relies on."""
    cfg = folder / CONFIG
    meta = read_json(cfg, redo="save the checkpoint again", error=CheckpointError)
    if meta.get("format", FORMAT) != FORMAT:
        raise CheckpointError(f"{cfg}: format {meta.get('format')!r} is not a toto-lens checkpoint")
    if meta.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
        raise CheckpointError(
            f"{cfg}: format version {meta['format_version']} is newer than this toto-lens reads "
            f"({FORMAT_VERSION}); upgrade toto-lens"
        )
    if "model" not in meta:
        raise CheckpointError(f"{cfg} misses the field 'model' (the model config)")
    try:
        meta["model"] = ModelConfig.from_dict(meta["model"])
    except (ConfigError, TypeError) as e:
        raise CheckpointError(f"{cfg}: {e}") from None
    return meta


def load_checkpoint(
    name_or_path: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    verify: bool = True,
    trust_code: bool = False,
) -> Checkpoint:
    """Load a checkpoint by registry name or folder path.

    verify=True checks the weights against the sha256 recorded at save time (catches a changed or
    corrupted file that still parses). The model is returned in eval mode. trust_code=False refuses a
    checkpoint whose tokenizer spec names code to import, before reading its weights.
    """

    from toto_lens.model import Toto
    from toto_lens.tokenizers.registry import require_trust

    folder = resolve_checkpoint(name_or_path)
    meta = read_metadata(folder)
    require_trust(meta.get("tokenizer"), trust_code, f"checkpoint {folder}: its tokenizer")
    config: ModelConfig = meta["model"]
    weights = folder / WEIGHTS
    state = read_safetensors(weights, redo=REDO, error=CheckpointError, device=device)
    sha = file_sha256(weights)
    recorded = meta.get("weights_sha256")
    if verify and recorded and recorded != sha:
        raise CheckpointError(
            f"{weights} does not match the sha256 recorded in {folder / CONFIG} (changed or corrupted); "
            "save the checkpoint again"
        )
    model = Toto.empty(config)
    state = _check_state(model, state, weights)
    model.load_state_dict(state, strict=True, assign=True)
    model.build_rope()
    if dtype is not None:
        model.to(dtype=dtype)
    tok_state = {}
    if (folder / TOKENIZER_STATE).is_file():
        tok_state = read_safetensors(folder / TOKENIZER_STATE, redo=REDO, error=CheckpointError)
    return Checkpoint(
        model=model.eval(),
        config=config,
        path=folder,
        sha256=sha,
        tokenizer=meta.get("tokenizer"),
        tokenizer_state=tok_state,
        training=meta.get("training") or {},
        meta={k: v for k, v in meta.items() if k not in ("model", "tokenizer", "training")},
        trust_code=trust_code,
    )


def _check_state(model: Toto, state: dict[str, torch.Tensor], weights: Path) -> dict[str, torch.Tensor]:
    """The weights in our layout (Hugging Face and Meta/gpt-fast names and rotary order converted),
    checked against the model's parameter names and shapes."""
    from toto_lens.convert.state import to_toto_state
    from toto_lens.convert.table import ConvertError

    try:
        state_renamed = to_toto_state(state, model.config)
    except ConvertError as e:
        raise CheckpointError(f"{weights}: {e}") from None
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(state_renamed))
    unexpected = sorted(set(state_renamed) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}{' …' if len(missing) > 3 else ''}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:3])}{' …' if len(unexpected) > 3 else ''}")
        raise CheckpointError(f"{weights} does not match its config: {'; '.join(parts)}")
    for key, shape in expected.items():
        got = tuple(state_renamed[key].shape)
        if got != shape:
            raise CheckpointError(
                f"{weights}: {key} has shape {list(got)} but the config in {CONFIG} implies {list(shape)}"
            )
    return state_renamed


def training_data(training: dict[str, Any]) -> tuple[str, int]:
    """(source, data seed) a checkpoint was trained on: the first source of its recorded data mix.

    Read from the checkpoint's metadata by the extractor (its default clips) and by the store's reader
    (the default dataset among several caches), so that neither needs the other or the trainer.
    """
    from toto_lens.data.mix import parse_mix

    cfg = training.get("config") or {}
    if not cfg.get("data"):
        raise ConfigError("this checkpoint records no training data; name the clips with --data SOURCE")
    return next(iter(parse_mix(cfg["data"]))), int(cfg.get("data_seed", 0))


def default_dataset(name_or_path: str | os.PathLike) -> str | None:
    """The dataset `toto-lens extract --ckpt NAME` writes without --data/--split: `<first source>-val`."""
    try:
        return (
            f"{training_data(read_metadata(resolve_checkpoint(name_or_path)).get('training') or {})[0]}-val"
        )
    except (CheckpointError, ConfigError):
        return None
