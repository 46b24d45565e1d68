"""Hook points with TransformerLens names on the native `Toto` model, and a capture that always cleans up.

The model file stays architecture only (STYLE.md): no hook modules are added to it. Instead a table maps
each TransformerLens-style name to a module of the native model and to which of its values the name
means (its output, the first element of its output tuple, or its first input):

    hook_embed                         tok_embeddings output          (B, T, D)  = layer 0
    blocks.{i}.hook_resid_pre          blocks[i] input                (B, T, D)
    blocks.{i}.ln1.hook_normalized     blocks[i].attention_norm output
    blocks.{i}.attn.hook_q / k / v     wq / wk / wv output            (B, T, H, hd)
    blocks.{i}.attn.hook_rot_q / rot_k rotated queries / keys         (B, T, H, hd)  (keys: kv heads)
    blocks.{i}.attn.hook_pattern       softmax weights                (B, H, T, S), eager attention only
    blocks.{i}.attn.hook_z             wo input                       (B, T, H, hd)
    blocks.{i}.hook_attn_out           attn output                    (B, T, D)
    blocks.{i}.hook_resid_mid          ffn_norm input                 (B, T, D)
    blocks.{i}.ln2.hook_normalized     ffn_norm output
    blocks.{i}.mlp.hook_pre            w1 output (gate, before SiLU)  (B, T, F)
    blocks.{i}.mlp.hook_pre_linear     w3 output (up)
    blocks.{i}.mlp.hook_post           w2 input: silu(gate) · up      (B, T, F)
    blocks.{i}.hook_mlp_out            mlp output                     (B, T, D)
    blocks.{i}.hook_resid_post         blocks[i] output               (B, T, D)  = layer i + 1
    ln_final.hook_normalized           final norm output

Asking for a pattern switches the blocks concerned to the eager attention path for the capture (SDPA
never materialises the weights) and switches them back afterwards, like every hook, also on exceptions.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from torch import Tensor, nn

from toto_lens.errors import ConfigError


class HookError(ConfigError):
    """A hook name the model does not have."""


# name suffix → (module path under blocks[i], which value, heads reshape). Values: a module's input
# ("in"), its output ("out"), or its (B, H, T, hd) output seen as (B, T, H, hd) ("out_heads", TL's order).
_BLOCK_POINTS: dict[str, tuple[str, str, bool]] = {
    "hook_resid_pre": ("", "in", False),
    "ln1.hook_normalized": ("attention_norm", "out", False),
    "attn.hook_q": ("attn.wq", "out", True),
    "attn.hook_k": ("attn.wk", "out", True),
    "attn.hook_v": ("attn.wv", "out", True),
    "attn.hook_rot_q": ("attn.hook_rot_q", "out_heads", False),
    "attn.hook_rot_k": ("attn.hook_rot_k", "out_heads", False),
    "attn.hook_pattern": ("attn.hook_pattern", "out", False),
    "attn.hook_z": ("attn.wo", "in", True),
    "hook_attn_out": ("attn", "out", False),
    "hook_resid_mid": ("ffn_norm", "in", False),
    "ln2.hook_normalized": ("ffn_norm", "out", False),
    "mlp.hook_pre": ("mlp.w1", "out", False),
    "mlp.hook_pre_linear": ("mlp.w3", "out", False),
    "mlp.hook_post": ("mlp.w2", "in", False),
    "hook_mlp_out": ("mlp", "out", False),
    "hook_resid_post": ("", "out", False),
}
_TOP_POINTS = {"hook_embed": ("tok_embeddings", "out"), "ln_final.hook_normalized": ("norm", "out")}
_BLOCK_NAME = re.compile(r"blocks\.(\d+)\.(.+)")


def hook_points(model: nn.Module) -> list[str]:
    """Every hook name of `model`, in forward order."""
    names = ["hook_embed"]
    for i in range(len(model.blocks)):
        names += [f"blocks.{i}.{suffix}" for suffix in _BLOCK_POINTS]
    return [*names, "ln_final.hook_normalized"]


def resolve_hook_names(model: nn.Module, names: str | Iterable[str]) -> list[str]:
    """Names or glob patterns (`blocks.*.hook_resid_post`) → the matching hook names, in forward order."""
    wanted = [names] if isinstance(names, str) else list(names)
    every = hook_points(model)
    out: list[str] = []
    for pattern in wanted:
        hits = fnmatch.filter(every, pattern)
        if not hits:
            raise HookError(
                f"no hook point {pattern!r} in a model with {len(model.blocks)} blocks; names look like "
                "hook_embed, blocks.0.hook_resid_post, blocks.0.attn.hook_pattern (`hook_points(model)` lists them)"
            )
        out += [h for h in hits if h not in out]
    return sorted(out, key=every.index)


def _locate(model: nn.Module, name: str) -> tuple[nn.Module, str, bool]:
    if name in _TOP_POINTS:
        path, which = _TOP_POINTS[name]
        return model.get_submodule(path), which, False
    match = _BLOCK_NAME.fullmatch(name)
    assert match is not None, name  # resolve_hook_names only returns known names
    path, which, heads = _BLOCK_POINTS[match.group(2)]
    block = model.blocks[int(match.group(1))]
    return (block.get_submodule(path) if path else block), which, heads


@contextmanager
def capture(
    model: nn.Module,
    names: str | Iterable[str],
    fn: Callable[[str, Tensor], None] | None = None,
    *,
    detach: bool = True,
) -> Iterator[dict[str, Tensor]]:
    """Capture activations during the forward passes run inside the `with` block.

    Without `fn` the activations land in the yielded dict by hook name (the last forward pass wins),
    like TransformerLens's `run_with_cache`. With `fn`, each activation is handed to `fn(name, tensor)`
    as it is computed and nothing is kept, so a caller can reduce it at once and memory does not grow
    with the number of layers. Hooks are removed and attention paths restored on exit, exceptions
    included.
    """
    resolved = resolve_hook_names(model, names)
    store: dict[str, Tensor] = {}
    handles = []
    impls = {}
    module_attn: dict[str, nn.Module] = {}  # hook name → its block's attention (head size, eager switch)

    def make(name: str, which: str, heads: bool, module: nn.Module):
        def emit(value: Tensor) -> None:
            if heads:
                attn = module_attn[name]
                value = value.view(*value.shape[:2], -1, attn.head_dim)  # (B, T, H, hd)
            if detach:
                value = value.detach()
            if fn is None:
                store[name] = value
            else:
                fn(name, value)

        if which == "in":
            return module.register_forward_pre_hook(lambda _m, args: emit(args[0]))
        pick = (lambda out: out.transpose(1, 2)) if which == "out_heads" else (lambda out: out)
        return module.register_forward_hook(lambda _m, _args, out: emit(pick(out)))

    try:
        for name in resolved:
            module, which, heads = _locate(model, name)
            if heads or name.endswith("attn.hook_pattern"):
                attn = model.blocks[int(name.split(".")[1])].attn
                module_attn[name] = attn
                if name.endswith("attn.hook_pattern"):
                    impls.setdefault(attn, attn.impl)
                    attn.impl = "eager"
            handles.append(make(name, which, heads, module))
        yield store
    finally:
        for handle in handles:
            handle.remove()
        for attn, impl in impls.items():
            attn.impl = impl
