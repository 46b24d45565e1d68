"""Adapters: a user's own pretrained dVAE / VQGAN, loaded from disk, behind the tokenizer protocol.

toto-lens downloads nothing. A tokenizer whose weights live on disk is described by a spec

    {"kind": "external", "factory": "package.module:function", "path": "/path/on/disk",
     "patch": 16, "image_size": [256, 256], "channels": 3, "name": "vqgan-1k", ...any keys the factory reads}

and rebuilt by `tokenizer_from_spec(spec)`: the factory is imported with importlib and called with the
spec; it returns an object with encode / decode / vocab_size / grid / spec / state_dict
(`base.TokenizerProtocol`). When a state is given and the object has `load_state_dict`, the state is
passed to it. Because a checkpoint stores the spec, a model trained on such tokens reloads its
tokenizer from the same factory and path. "channels" is the number of channels of a frame (3 for RGB);
a spec without it is grey (1).

The easy way is to subclass `ExternalTokenizer` (a `Tokenizer`): it reads patch / image_size / channels /
seed / name from the spec, keeps the extra keys in `spec`, and gives the input checks and the [B, F]
batching for free; the subclass maps a stack of frames float32 in [0, 1], [N, H, W, C] channels last
([N, H, W] for a grey spec), to ids [N, rows, cols] and back. A worked example, wrapping an RGB VQGAN the
user already has (their class, their checkpoint file):

    # my_vq/toto_adapter.py, importable (installed or on PYTHONPATH)
    import torch
    from toto_lens.tokenizers import ExternalTokenizer

    from my_vq.model import MyVQGAN  # the user's model code


    class MyVQTokenizer(ExternalTokenizer):
        def __init__(self, spec):
            super().__init__(spec)  # patch, image_size, channels (3 here), seed, name from the spec
            self.model = MyVQGAN.from_checkpoint(spec["path"]).eval()

        @property
        def vocab_size(self):
            return self.model.quantize.n_embed  # visual codes only: toto-lens adds the special ids

        @torch.inference_mode()
        def _encode_frames(self, frames):  # [N, H, W, 3] float32 in [0, 1]
            x = torch.from_numpy(frames).permute(0, 3, 1, 2) * 2 - 1  # (N, 3, H, W) in [-1, 1]
            return self.model.encode_to_indices(x).numpy()  # (N, H / patch, W / patch)

        @torch.inference_mode()
        def _decode_frames(self, ids):  # [N, rows, cols] int64, range-checked
            rgb = self.model.decode_indices(torch.from_numpy(ids))  # (N, 3, H, W) in [-1, 1]
            return ((rgb.permute(0, 2, 3, 1) + 1) / 2).numpy()  # (N, H, W, 3) in [0, 1]


    def load(spec):
        return MyVQTokenizer(spec)

and then

    from toto_lens.tokenizers import tokenizer_from_spec
    tok = tokenizer_from_spec({"kind": "external", "factory": "my_vq.toto_adapter:load",
                               "path": "/data/vqgan-1k.ckpt", "patch": 16, "image_size": [256, 256],
                               "channels": 3},
                              trust_code=True)  # the spec names code to import: say you trust it
    ids = tok.encode(frames)  # frames [F, 256, 256, 3] → ids [F, 16, 16]
    rgb = tok.decode(ids)  # [F, 256, 256, 3]

Grey frames [F, H, W] given to this RGB tokenizer are refused in one line (the base class checks); to
feed them, repeat them over the channels first (`np.repeat(frames[..., None], 3, -1)`).

Another way to plug in is the registry: give the class `kind = "my-vq"` (`from_state` rebuilds it as
`cls(spec)`), then `register_tokenizer("my-vq", MyVQTokenizer)`. Specs then say {"kind": "my-vq", ...}
without a factory string and need no `trust_code`, since the user's own code chose what runs; the
registration must run before any loading.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from toto_lens.tokenizers.base import Tokenizer, TokenizerError, TokenizerProtocol, check_protocol
from toto_lens.tokenizers.registry import import_object, require_trust, spec_channels, spec_field

# Spec keys the base class writes itself; every other key of an external spec is kept as given.
_BASE_KEYS = ("kind", "name", "vocab_size", "patch", "image_size", "channels", "grid", "seed")


class ExternalTokenizer(Tokenizer):
    """Base for adapters: configured by an external spec; subclasses provide vocab_size and the mapping."""

    kind = "external"

    def __init__(self, spec: dict[str, Any]):
        self.extra = {k: v for k, v in spec.items() if k not in _BASE_KEYS}
        super().__init__(
            patch=spec_field(spec, "patch"),
            image_size=tuple(spec_field(spec, "image_size")),
            seed=spec.get("seed", 0),
            name=spec.get("name"),
            channels=spec_channels(spec),
        )

    def default_name(self) -> str:
        return f"external-p{self.patch}"

    def hyperparameters(self) -> dict[str, Any]:
        return dict(self.extra)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {}  # the weights stay at spec["path"]; override to carry small tensors in checkpoints

    @classmethod
    def from_state(cls, spec: dict[str, Any], state: dict[str, np.ndarray]) -> TokenizerProtocol:
        """A subclass registered under its own kind rebuilds itself: its kind was registered by the user's
        code, so nothing the spec names is imported (no trust needed)."""
        tok = cls(spec)
        if state and hasattr(tok, "load_state_dict"):
            tok.load_state_dict(state)
        return tok


def load_external(
    spec: dict[str, Any], state: dict[str, np.ndarray] | None = None, *, trust_code: bool = False
) -> TokenizerProtocol:
    """Import spec["factory"], call it with the spec, check that the result is a tokenizer.

    The spec chooses the code, so it is refused (one line naming the module, nothing imported) unless
    trust_code=True (`--trust-code`)."""
    factory_name = spec_field(spec, "factory")
    if not isinstance(factory_name, str):
        raise TokenizerError(
            f"external tokenizer: 'factory' must be a 'package.module:function' string, got {factory_name!r}"
        )
    require_trust(spec, trust_code, "external tokenizer")
    path = spec.get("path")
    if path is not None and not Path(path).expanduser().exists():
        raise TokenizerError(
            f"external tokenizer {spec.get('name', factory_name)!r}: path {path} does not exist; "
            "toto-lens loads tokenizer weights from disk only, put them there first"
        )
    factory = import_object(factory_name, "external tokenizer factory")
    if not callable(factory):
        raise TokenizerError(f"external tokenizer factory {factory_name!r} is not callable")
    tok = factory(dict(spec))
    check_protocol(tok, f"external tokenizer factory {factory_name!r}")
    if state and hasattr(tok, "load_state_dict"):
        tok.load_state_dict(state)
    return tok
