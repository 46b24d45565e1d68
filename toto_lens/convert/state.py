"""State dicts between our layout, Hugging Face Llama's and Meta/gpt-fast's.

* Rotary row order. Ours and Hugging Face's rotate pairs of query/key features (i, i + hd/2) ("rotate
  half"); Meta's `llama/model.py` and gpt-fast rotate interleaved pairs (2i, 2i + 1) through complex
  numbers. The same attention needs the rows of wq and wk reordered inside each head:
  `interleaved_to_half` (Meta → ours) is the `permute` of transformers'
  `convert_llama_weights_to_hf.py`, and `half_to_interleaved` its inverse (gpt-fast's
  `convert_hf_checkpoint.py`). tests/convert/test_convert.py pins the direction against a Meta-style forward.
* gpt-fast's fused `attention.wqkv`: rows wq (n_heads·hd), then wk and wv (kv_heads·hd each).
* μP. Our attention scales its logits by `Attention.scale` (sqrt(base_hd)/hd under μP) and the model
  multiplies its logits by `Toto.output_scale` (1/m); Llama always uses 1/sqrt(hd) and no multiplier.
  Export folds both into the weights (wq · scale·sqrt(hd), output · 1/m): the same function, a plain
  config.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from toto_lens.config import ModelConfig
from toto_lens.convert.table import FUSED_QKV, ConvertError, detect_format, is_derived, names


def interleaved_to_half(w: Tensor, heads: int) -> Tensor:
    """Rows of a Meta/gpt-fast wq or wk (pairs (2i, 2i+1) per head) in our rotate-half order."""
    rows, cols = w.shape
    hd = rows // heads
    return w.reshape(heads, hd // 2, 2, cols).transpose(1, 2).reshape(rows, cols)  # (heads·2·hd/2, cols)


def half_to_interleaved(w: Tensor, heads: int) -> Tensor:
    """Inverse of `interleaved_to_half`: our wq or wk rows in Meta/gpt-fast's interleaved order."""
    rows, cols = w.shape
    hd = rows // heads
    return w.reshape(heads, 2, hd // 2, cols).transpose(1, 2).reshape(rows, cols)  # (heads·hd/2·2, cols)


def split_wqkv(w: Tensor, config: ModelConfig, key: str) -> tuple[Tensor, Tensor, Tensor]:
    """wq, wk, wv of gpt-fast's fused projection (rows q, then k, then v)."""
    q, kv = config.n_heads * config.head_dim, config.kv_heads * config.head_dim
    if w.ndim != 2 or w.shape != (q + 2 * kv, config.dim):
        raise ConvertError(
            f"{key} has shape {list(w.shape)} but the config implies {[q + 2 * kv, config.dim]} "
            f"(wq {q} rows, wk and wv {kv} rows each)"
        )
    wq, wk, wv = w.split([q, kv, kv])
    return wq, wk, wv


def attention_fold(config: ModelConfig) -> float | None:
    """Factor on wq that turns our attention scale into Llama's 1/sqrt(hd); None when it is already that."""
    if config.mup_base_width is None:
        return None
    base_hd = config.mup_base_width // config.n_heads
    return math.sqrt(base_hd / config.head_dim)  # Attention.scale · sqrt(hd)


def output_fold(config: ModelConfig) -> float | None:
    """Factor on the output head that replaces `Toto.output_scale`; None when there is none."""
    return None if config.mup_base_width is None else 1.0 / config.mup_width_mult


def to_toto_state(state: dict[str, Tensor], config: ModelConfig) -> dict[str, Tensor]:
    """Our state dict from one in our, Hugging Face Llama's or Meta/gpt-fast's layout (told by its keys).

    Renames, puts the wq/wk rows of interleaved-rotary (Meta/gpt-fast) weights in our rotate-half order,
    splits a fused wqkv, drops derived tensors (rotary tables, caches). Tensors it does not know keep
    their names, so that `check_state` (or the checkpoint reader) names them. Our own layout comes back
    unchanged, tensor for tensor.
    """
    fmt = detect_format(state)
    if fmt == "toto":
        return dict(state)
    state = {k: v for k, v in state.items() if not is_derived(k)}
    if fmt == "meta":
        state = _unfuse(state, config)
    ours = {theirs: mine for mine, theirs in names(config.n_layers, fmt).items()}
    out = {ours.get(k, k): v for k, v in state.items()}
    if fmt == "meta":
        theirs = names(config.n_layers, fmt)
        for i in range(config.n_layers):
            for proj, heads in (("wq", config.n_heads), ("wk", config.kv_heads)):
                key = f"blocks.{i}.attn.{proj}.weight"
                if key in out:
                    _require_shape(out[key], (heads * config.head_dim, config.dim), theirs[key])
                    out[key] = interleaved_to_half(out[key], heads)
    return out


def _unfuse(state: dict[str, Tensor], config: ModelConfig) -> dict[str, Tensor]:
    out = dict(state)
    for i in range(config.n_layers):
        fused = FUSED_QKV.format(i=i)
        if fused not in out:
            continue
        parts = [f"layers.{i}.attention.{p}.weight" for p in ("wq", "wk", "wv")]
        if any(p in out for p in parts):
            raise ConvertError(f"layer {i} holds both a fused {fused} and separate wq/wk/wv; keep one")
        out.update(zip(parts, split_wqkv(out.pop(fused), config, fused), strict=True))
    return out


def to_llama_state(state: dict[str, Tensor], config: ModelConfig, fmt: str = "hf") -> dict[str, Tensor]:
    """Our state dict as Hugging Face Llama (fmt="hf") or Meta (fmt="meta") weights, μP folded in.

    The result computes our function with Llama's plain attention scale and no output multiplier
    (`llama_config`); without μP the tensors are ours, renamed (and, for Meta, rows reordered).
    """
    table = names(config.n_layers, fmt)
    missing = sorted(set(table) - set(state))
    if missing:
        raise ConvertError(f"the state dict misses {_few(missing)}")
    out = {}
    q_fold, out_fold = attention_fold(config), output_fold(config)
    for mine, theirs in table.items():
        w = state[mine]
        if q_fold is not None and mine.endswith("attn.wq.weight"):
            w = (w.double() * q_fold).to(w.dtype)
        if out_fold is not None and mine == "output.weight":
            w = (w.double() * out_fold).to(w.dtype)
        if fmt == "meta" and mine.endswith(("attn.wq.weight", "attn.wk.weight")):
            w = half_to_interleaved(w, config.n_heads if mine.endswith("wq.weight") else config.kv_heads)
        out[theirs] = w
    return out


def expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Our parameter name → its shape under `config` (what `Toto(config).state_dict()` holds)."""
    d, v, f = config.dim, config.vocab_size, config.ffn_dim
    q, kv = config.n_heads * config.head_dim, config.kv_heads * config.head_dim
    block = {
        "attention_norm.weight": (d,), "attn.wq.weight": (q, d), "attn.wk.weight": (kv, d),
        "attn.wv.weight": (kv, d), "attn.wo.weight": (d, q), "ffn_norm.weight": (d,),
        "mlp.w1.weight": (f, d), "mlp.w3.weight": (f, d), "mlp.w2.weight": (d, f),
    }  # fmt: skip
    shapes = {"tok_embeddings.weight": (v, d), "norm.weight": (d,), "output.weight": (v, d)}
    for i in range(config.n_layers):
        shapes.update({f"blocks.{i}.{k}": s for k, s in block.items()})
    return shapes


def check_state(state: dict[str, Tensor], config: ModelConfig, fmt: str = "toto") -> None:
    """Raise ConvertError naming the first missing, unexpected or misshapen tensor of our state dict.

    fmt: the layout the weights came from, so that the message names their tensors as the file does.
    """
    shapes = expected_shapes(config)
    theirs = names(config.n_layers, fmt)
    missing = sorted(set(shapes) - set(state), key=list(shapes).index)
    if missing:
        raise ConvertError(f"the weights miss the tensor(s) {_few([theirs[k] for k in missing])}")
    unexpected = sorted(set(state) - set(shapes))
    if unexpected:
        raise ConvertError(
            f"the weights hold tensor(s) a bias-free untied Llama does not have: {_few(unexpected)}"
        )
    for key, shape in shapes.items():
        _require_shape(state[key], shape, theirs[key])


def _require_shape(w: Tensor, shape: tuple[int, ...], key: str) -> None:
    if tuple(w.shape) != shape:
        raise ConvertError(f"{key} has shape {list(w.shape)} but the config implies {list(shape)}")


def _few(keys: list[str]) -> str:
    return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")


def cast(state: dict[str, Tensor], dtype: torch.dtype) -> dict[str, Tensor]:
    """Every tensor in `dtype`, contiguous, on the CPU (what safetensors writes)."""
    return {k: v.detach().to("cpu", dtype).contiguous() for k, v in state.items()}
