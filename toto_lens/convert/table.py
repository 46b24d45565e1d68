"""One table of parameter names: ours, Hugging Face `LlamaForCausalLM`'s, and Meta/gpt-fast's.

Follows the names of transformers' `modeling_llama.py` (`model.layers.{i}.self_attn.q_proj`, …),
Meta's `llama/model.py` and gpt-fast's `model.py` (`layers.{i}.attention.wq`, `feed_forward.w1`; gpt-fast
may fuse `wq`, `wk`, `wv` into `attention.wqkv`). Names only: the rotary row order and the fused split
are in `toto_lens.convert.state`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from toto_lens.errors import TotoLensError

FORMATS = ("toto", "hf", "meta")


class ConvertError(TotoLensError):
    """Weights or a config in another layout that cannot be converted (or converted back)."""


# (ours, Hugging Face, Meta/gpt-fast), per block ({i}) and then for the whole model.
BLOCK_NAMES: tuple[tuple[str, str, str], ...] = (
    ("blocks.{i}.attention_norm.weight", "model.layers.{i}.input_layernorm.weight",
     "layers.{i}.attention_norm.weight"),
    ("blocks.{i}.attn.wq.weight", "model.layers.{i}.self_attn.q_proj.weight", "layers.{i}.attention.wq.weight"),
    ("blocks.{i}.attn.wk.weight", "model.layers.{i}.self_attn.k_proj.weight", "layers.{i}.attention.wk.weight"),
    ("blocks.{i}.attn.wv.weight", "model.layers.{i}.self_attn.v_proj.weight", "layers.{i}.attention.wv.weight"),
    ("blocks.{i}.attn.wo.weight", "model.layers.{i}.self_attn.o_proj.weight", "layers.{i}.attention.wo.weight"),
    ("blocks.{i}.ffn_norm.weight", "model.layers.{i}.post_attention_layernorm.weight",
     "layers.{i}.ffn_norm.weight"),
    ("blocks.{i}.mlp.w1.weight", "model.layers.{i}.mlp.gate_proj.weight", "layers.{i}.feed_forward.w1.weight"),
    ("blocks.{i}.mlp.w3.weight", "model.layers.{i}.mlp.up_proj.weight", "layers.{i}.feed_forward.w3.weight"),
    ("blocks.{i}.mlp.w2.weight", "model.layers.{i}.mlp.down_proj.weight", "layers.{i}.feed_forward.w2.weight"),
)  # fmt: skip
MODEL_NAMES: tuple[tuple[str, str, str], ...] = (
    ("tok_embeddings.weight", "model.embed_tokens.weight", "tok_embeddings.weight"),
    ("norm.weight", "model.norm.weight", "norm.weight"),
    ("output.weight", "lm_head.weight", "output.weight"),
)
# gpt-fast's fused projection: rows are wq (n_heads·hd), then wk and wv (kv_heads·hd each).
FUSED_QKV = "layers.{i}.attention.wqkv.weight"

# Derived tensors some checkpoints carry beside the weights: rotary tables, masks, decoding caches.
# They are recomputed from the config, never loaded.
_DERIVED = re.compile(r"(^|\.)(rotary_emb\.inv_freq|rope\.freqs|freqs_cis|causal_mask|kv_cache\.[kv]_cache)$")

# Key prefixes that tell the layouts apart (ours and Meta share the embedding, norm and output names).
_PREFIXES = {"toto": ("blocks.",), "hf": ("model.", "lm_head."), "meta": ("layers.",)}


def names(n_layers: int, fmt: str) -> dict[str, str]:
    """Our parameter name → its name in `fmt` ("toto", "hf" or "meta"), for a model of n_layers blocks."""
    if fmt not in FORMATS:
        raise ConvertError(f"unknown weight layout {fmt!r}; choose one of {', '.join(FORMATS)}")
    col = FORMATS.index(fmt)
    table = {row[0]: row[col] for row in MODEL_NAMES}
    for i in range(n_layers):
        table.update({row[0].format(i=i): row[col].format(i=i) for row in BLOCK_NAMES})
    return table


def is_derived(key: str) -> bool:
    """A tensor computed from the config (rotary table, mask, cache) rather than a weight."""
    return _DERIVED.search(key) is not None


def detect_format(keys: Iterable[str]) -> str:
    """ "toto", "hf" or "meta", from the names of a state dict's tensors.

    A dict whose names match none of the layouts is taken as ours, so that the checkpoint reader names
    the tensors that do not belong.
    """
    found = {fmt for key in keys for fmt, prefixes in _PREFIXES.items() if key.startswith(prefixes)}
    if len(found) > 1:
        raise ConvertError(
            f"the weights mix parameter names of several layouts ({', '.join(sorted(found))}); "
            "convert a state dict of one layout at a time"
        )
    return found.pop() if found else "toto"
