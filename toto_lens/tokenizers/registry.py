"""Rebuilding tokenizers from (spec, state), and tokenizer folders on disk.

A tokenizer is two things: its spec (JSON: kind, vocab_size, patch, image_size, channels, seed,
hyperparameters, name; a spec without "channels", as every one written before frames had channels,
means 1: grey) and its state (named float32/int arrays: codebooks, projections). `tokenizer_from_spec`
dispatches on spec["kind"] through a small registry that built-in tokenizers and adapters plug into. On
disk a tokenizer is a folder, written atomically like a checkpoint (`toto_lens.checkpoints`):

    tokenizer.json          the spec
    tokenizer.safetensors   the state

Only JSON and safetensors are read: nothing is unpickled. A checkpoint stores the same pair (its
config.json "tokenizer" field and its tokenizer.safetensors), so `tokenizer_from_spec(ckpt.tokenizer,
ckpt.tokenizer_state)` rebuilds a checkpoint's tokenizer.

Trust. A spec is data, but an `external` spec names Python code (`"factory": "package.module:function"`)
that rebuilding it would import and run. Like transformers' `trust_remote_code`, such a spec is refused
unless the caller passes `trust_code=True` (`--trust-code` on the command line); the refusal names the
module and imports nothing. Kinds registered with `register_tokenizer` (by the user's own code) and the
built-in kinds need no trust: the spec chooses no code there.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from toto_lens.io import atomic_folder, read_json, read_safetensors, to_json
from toto_lens.tokenizers.base import TokenizerError, TokenizerProtocol, check_positive, check_protocol

SPEC_FILE = "tokenizer.json"
STATE_FILE = "tokenizer.safetensors"

Factory = Callable[[dict[str, Any], dict[str, np.ndarray]], TokenizerProtocol]

# Built-ins are named, not imported, so that importing the registry pulls in neither sklearn nor scipy.
EXTERNAL = "toto_lens.tokenizers.adapter:load_external"  # the one built-in that imports what a spec names
_REGISTRY: dict[str, Factory | str] = {
    "kmeans": "toto_lens.tokenizers.kmeans:PatchKMeans",
    "random_codebook": "toto_lens.tokenizers.random_codebook:RandomCodebook",
    "external": EXTERNAL,
}


class UntrustedCodeError(TokenizerError):
    """A spec names Python code to import and run, and the caller did not pass trust_code=True."""


def code_named_by(spec: Any) -> str | None:
    """The "package.module:attr" that rebuilding `spec` would import, or None when the spec chooses no code
    (built-in kinds, kinds registered by the user's own code)."""
    if not isinstance(spec, dict) or _REGISTRY.get(spec.get("kind")) != EXTERNAL:
        return None
    factory = spec.get("factory")
    return factory if isinstance(factory, str) else repr(factory)


def require_trust(spec: Any, trust_code: bool, what: str = "tokenizer spec") -> None:
    """Refuse, in one line naming the module, a spec that would import code, unless trust_code."""
    code = code_named_by(spec)
    if code is None or trust_code:
        return
    module = code.partition(":")[0]
    name = spec.get("name") if isinstance(spec, dict) else None
    raise UntrustedCodeError(
        f"{what}{f' {name!r}' if name else ''} names code to run: it would import module {module!r} "
        f"(factory {code!r}); pass --trust-code (trust_code=True in Python) only if you trust its source"
    )


def register_tokenizer(kind: str, cls_or_factory: type | Factory | str) -> None:
    """Make `tokenizer_from_spec` rebuild specs of this kind.

    cls_or_factory: a class with `from_state(spec, state)` (every `Tokenizer`), a callable
    (spec, state) → tokenizer, or a "package.module:attr" string naming either, imported on first use.
    Registering an existing kind replaces it.
    """
    if not isinstance(kind, str) or not kind:
        raise TokenizerError(f"a tokenizer kind must be a non-empty string, got {kind!r}")
    if not (isinstance(cls_or_factory, str) or callable(cls_or_factory)):
        raise TokenizerError(
            f"register_tokenizer({kind!r}, …) needs a class or a callable, got {cls_or_factory!r}"
        )
    _REGISTRY[kind] = cls_or_factory


def registered_kinds() -> list[str]:
    return sorted(_REGISTRY)


def import_object(target: str, what: str) -> Any:
    """The object named by "package.module:attr", or a one-line TokenizerError."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise TokenizerError(f"{what} {target!r} must read 'package.module:attr'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise TokenizerError(
            f"{what} {target!r}: cannot import {module_name!r} ({e}); install it or add it to PYTHONPATH"
        ) from None
    try:
        obj = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise TokenizerError(f"{what} {target!r}: module {module_name!r} has no attribute {attr!r}") from None
    return obj


def _factory(kind: str) -> Factory:
    entry = _REGISTRY[kind]
    if isinstance(entry, str):
        entry = import_object(entry, f"tokenizer kind {kind!r} is registered as")
    if isinstance(entry, type):
        if not hasattr(entry, "from_state"):
            raise TokenizerError(
                f"tokenizer kind {kind!r}: class {entry.__name__} has no from_state(spec, state)"
            )
        return entry.from_state
    return entry


def as_numpy_state(state: Any) -> dict[str, np.ndarray]:
    """Arrays from a state of numpy arrays or torch tensors (a checkpoint's tokenizer_state)."""
    if state is None:
        return {}
    if not isinstance(state, dict):
        raise TokenizerError(f"tokenizer state must be a dict of arrays, got {type(state).__name__}")
    out = {}
    for key, value in state.items():
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        out[str(key)] = np.asarray(value)
    return out


def tokenizer_from_spec(
    spec: dict[str, Any], state: dict[str, Any] | None = None, *, trust_code: bool = False
) -> TokenizerProtocol:
    """Rebuild a tokenizer from its spec and state (numpy arrays or torch tensors).

    trust_code: allow an `external` spec to import and run the factory it names (see the module docstring).
    """
    if not isinstance(spec, dict) or "kind" not in spec:
        raise TokenizerError(f"a tokenizer spec is a dict with a 'kind' field, got {spec!r:.120}")
    kind = spec["kind"]
    if kind not in _REGISTRY:
        raise TokenizerError(
            f"unknown tokenizer kind {kind!r}; known kinds: {', '.join(registered_kinds())} "
            "(register your own with toto_lens.tokenizers.register_tokenizer)"
        )
    if _REGISTRY[kind] == EXTERNAL:  # checks the factory's form, then refuses unless trust_code
        from toto_lens.tokenizers.adapter import load_external

        return load_external(dict(spec), as_numpy_state(state), trust_code=trust_code)
    tok = _factory(kind)(dict(spec), as_numpy_state(state))
    check_protocol(tok, f"tokenizer kind {kind!r}")
    return tok


def save_tokenizer(tok: TokenizerProtocol, folder: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write `tok` as a folder (tokenizer.json + tokenizer.safetensors), atomically; returns the folder.

    Refuses an existing folder unless overwrite=True.
    """
    from safetensors.numpy import save_file

    text = to_json(tok.spec, "tokenizer spec", TokenizerError)
    state = {k: np.ascontiguousarray(v) for k, v in as_numpy_state(tok.state_dict()).items()}
    with atomic_folder(folder, overwrite=overwrite, error=TokenizerError) as tmp:
        save_file(state, str(tmp / STATE_FILE), metadata={"format": "toto-lens-tokenizer"})
        (tmp / SPEC_FILE).write_text(text)
    return Path(folder).expanduser()


def load_tokenizer_dir(folder: str | os.PathLike, *, trust_code: bool = False) -> TokenizerProtocol:
    """Read a folder written by `save_tokenizer` back into a tokenizer (trust_code: as tokenizer_from_spec).

    An `external` adapter's folder may hold tokenizer.json alone: its weights are read by its factory
    from where its spec says, so a folder written by hand needs no empty state file."""
    root = Path(folder).expanduser()
    redo = "save the tokenizer again"
    spec = read_json(root / SPEC_FILE, redo=redo, error=TokenizerError)
    require_trust(spec, trust_code, f"the tokenizer in {root}")
    if spec.get("kind") == "external" and not (root / STATE_FILE).exists():
        return tokenizer_from_spec(spec, {}, trust_code=trust_code)
    state = read_safetensors(root / STATE_FILE, redo=redo, error=TokenizerError, framework="numpy")
    return tokenizer_from_spec(spec, state, trust_code=trust_code)


def require_state(
    spec: dict[str, Any], state: dict[str, np.ndarray], shapes: dict[str, tuple[int, ...]]
) -> dict[str, np.ndarray]:
    """Check that `state` holds each named array with the shape the spec implies; float32 copies."""
    name = spec.get("name", spec.get("kind"))
    out = {}
    for key, shape in shapes.items():
        if key not in state:
            raise TokenizerError(f"tokenizer {name!r}: state misses {key!r}; save the tokenizer again")
        arr = np.asarray(state[key])
        if tuple(arr.shape) != tuple(shape):
            raise TokenizerError(
                f"tokenizer {name!r}: state {key!r} has shape {list(arr.shape)} but the spec implies {list(shape)}"
            )
        out[key] = np.array(arr, dtype=np.float32)
    return out


def spec_field(spec: dict[str, Any], key: str) -> Any:
    if key not in spec:
        raise TokenizerError(f"tokenizer spec of kind {spec.get('kind')!r} misses the field {key!r}")
    return spec[key]


def spec_channels(spec: dict[str, Any]) -> int:
    """The channels a spec's frames have; specs older than channels (no key) are grey: 1."""
    return check_positive(
        f"tokenizer {spec.get('name', spec.get('kind'))!r}: channels", spec.get("channels", 1)
    )
