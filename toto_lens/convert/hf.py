"""Hugging Face Llama folders: export a Toto checkpoint as one, import one as a Toto checkpoint.

Follows transformers' `LlamaConfig` / `LlamaForCausalLM` (config.json and safetensors weights, one
`model.safetensors` or shards listed in `model.safetensors.index.json`), without importing
transformers. Toto's block is Llama's (pre-norm RMSNorm, rotate-half RoPE, SwiGLU, no biases) with an
untied output head; what Llama configs allow beyond that (biases, tied embeddings, scaled RoPE, other
activations) is refused with one line. Visual-token metadata that Llama's config has no field for (the
image-start id, where the codes start, the token layout) travels in a `toto_lens` block of config.json,
which transformers keeps as an unused attribute.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from toto_lens.config import END_ID, IMAGE_START_ID, PAD_ID, VIDEO_START_ID, ModelConfig
from toto_lens.convert.state import cast, check_state, to_llama_state, to_toto_state
from toto_lens.convert.table import ConvertError
from toto_lens.io import atomic_folder, read_json, read_safetensors, to_json

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"
SPECIALS = ("pad_id", "video_start_id", "end_id", "image_start_id")
_DEFAULT_SPECIALS = dict(zip(SPECIALS, (PAD_ID, VIDEO_START_ID, END_ID, IMAGE_START_ID), strict=True))
_REDO = "export the model again (save_pretrained with safetensors)"


def llama_config(config: ModelConfig, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `LlamaConfig` (as config.json's dict) of a model with our architecture; μP is folded into
    the weights by `to_llama_state`, so the config is plain. extra: the `toto_lens` block."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": config.dim,
        "intermediate_size": config.ffn_dim,
        "num_hidden_layers": config.n_layers,
        "num_attention_heads": config.n_heads,
        "num_key_value_heads": config.kv_heads,
        "head_dim": config.head_dim,
        "max_position_embeddings": config.context_length,
        "rope_theta": config.rope_base,
        "rope_scaling": None,
        "rope_parameters": {"rope_type": "default", "rope_theta": config.rope_base},
        "rms_norm_eps": config.norm_eps,
        "vocab_size": config.vocab_size,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "initializer_range": config.init_std,
        "bos_token_id": config.video_start_id,
        "eos_token_id": config.end_id,
        "pad_token_id": config.pad_id,
        "torch_dtype": "float32",
        "dtype": "float32",
        "use_cache": True,
        "toto_lens": {
            **{k: getattr(config, k) for k in SPECIALS},
            "first_code_id": config.first_code_id,
            **(extra or {}),
        },
    }


def config_from_llama(
    hf: dict[str, Any],
    *,
    name: str = "imported",
    specials: dict[str, int | None] | None = None,
    first_code_id: int | None = None,
) -> ModelConfig:
    """Our (plain, non-μP) config of a `LlamaConfig` dict; ConvertError for what Toto cannot compute.

    Special ids: `specials` (pad_id, video_start_id, end_id, image_start_id; None = not given) win,
    then config.json's `toto_lens` block, then Llama's pad/bos/eos ids (bos = video start), then ours.
    """
    _check_supported(hf)
    extra = hf.get("toto_lens") or {}
    llama = {
        "pad_id": hf.get("pad_token_id"),
        "video_start_id": hf.get("bos_token_id"),
        "end_id": hf.get("eos_token_id"),
    }
    ids = {}
    for key in SPECIALS:
        given = [(specials or {}).get(key), extra.get(key), llama.get(key), _DEFAULT_SPECIALS[key]]
        value = next(v for v in given if v is not None)
        ids[key] = value[0] if isinstance(value, list) else value  # Llama 3 lists several eos ids
    rope = hf.get("rope_parameters") or {}
    theta = rope.get("rope_theta", hf.get("rope_theta", 10_000.0))
    first = first_code_id if first_code_id is not None else extra.get("first_code_id")
    try:
        return ModelConfig(
            vocab_size=_field(hf, "vocab_size"),
            dim=_field(hf, "hidden_size"),
            n_layers=_field(hf, "num_hidden_layers"),
            n_heads=_field(hf, "num_attention_heads"),
            ffn_dim=_field(hf, "intermediate_size"),
            context_length=_field(hf, "max_position_embeddings"),
            n_kv_heads=_kv_heads(hf),
            rope_base=float(theta),
            norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
            init_std=float(hf.get("initializer_range", 0.02)),
            first_code_id=first,
            name=name,
            **ids,
        )
    except ValueError as e:  # ConfigError: a Llama shape or special id our config cannot hold
        raise ConvertError(str(e)) from None


def _kv_heads(hf: dict[str, Any]) -> int | None:
    """None (our spelling of multi-head attention) when there are as many key/value heads as heads."""
    kv = hf.get("num_key_value_heads")
    return None if kv in (None, hf.get("num_attention_heads")) else kv


def _field(hf: dict[str, Any], key: str) -> int:
    if key not in hf:
        raise ConvertError(f"{CONFIG} misses {key!r}, which every LlamaConfig has")
    return hf[key]


def _check_supported(hf: dict[str, Any]) -> None:
    kind, archs = hf.get("model_type"), hf.get("architectures") or ["LlamaForCausalLM"]
    if kind != "llama" or "LlamaForCausalLM" not in archs:
        raise ConvertError(
            f"{CONFIG} describes model_type {kind!r} ({', '.join(archs)}); only LlamaForCausalLM converts"
        )
    for key in ("attention_bias", "mlp_bias"):
        if hf.get(key):
            raise ConvertError(f"biases are not supported ({key} is true); Toto's layers have none")
    if hf.get("tie_word_embeddings"):
        raise ConvertError(
            "tied embeddings are not supported (tie_word_embeddings is true); Toto's head is untied"
        )
    if hf.get("hidden_act", "silu") != "silu":
        raise ConvertError(f"hidden_act {hf['hidden_act']!r} is not supported; Toto's MLP is SwiGLU (silu)")
    rope = hf.get("rope_parameters") or {}
    if hf.get("rope_scaling") is not None or rope.get("rope_type", "default") != "default":
        scaling = hf.get("rope_scaling") or rope
        raise ConvertError(f"rope scaling {json.dumps(scaling)} is not supported; only plain RoPE (null)")
    if rope.get("partial_rotary_factor", hf.get("partial_rotary_factor", 1.0)) != 1.0:
        raise ConvertError("partial rotary embeddings (partial_rotary_factor < 1) are not supported")
    heads, dim = hf.get("num_attention_heads"), hf.get("hidden_size")
    if (
        isinstance(heads, int)
        and heads > 0
        and isinstance(dim, int)
        and hf.get("head_dim") not in (None, dim // heads)
    ):
        raise ConvertError(
            f"head_dim {hf['head_dim']} differs from hidden_size / num_attention_heads = {dim}/{heads}; "
            "Toto's heads split the width evenly"
        )


def read_llama_folder(folder: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config.json dict, state dict) of a Hugging Face folder: one model.safetensors or its shards."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ConvertError(f"no folder {root}; give the folder that holds config.json and the safetensors")
    hf = read_json(root / CONFIG, redo=_REDO, error=ConvertError)
    if (root / INDEX).is_file():
        index = read_json(root / INDEX, redo=_REDO, error=ConvertError)
        weight_map = index.get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ConvertError(f"{root / INDEX} has no weight_map; {_REDO}")
        state: dict[str, Any] = {}
        for shard in sorted(set(weight_map.values())):
            state.update(read_safetensors(root / shard, redo=_REDO, error=ConvertError))
        absent = sorted(k for k in weight_map if k not in state)
        if absent:
            raise ConvertError(f"{root / INDEX} lists {', '.join(absent[:3])}, which no shard holds; {_REDO}")
        return hf, state
    if not (root / WEIGHTS).is_file() and any(root.glob("*.bin")):
        raise ConvertError(f"{root} holds only pickled *.bin weights; toto-lens reads safetensors: {_REDO}")
    return hf, read_safetensors(root / WEIGHTS, redo=_REDO, error=ConvertError)


def export_checkpoint(
    ckpt: str | os.PathLike,
    out: str | os.PathLike,
    *,
    fmt: str = "hf",
    overwrite: bool = False,
    trust_code: bool = False,
) -> Path:
    """Write checkpoint `ckpt` in another layout at `out`; fmt "hf" (the only one so far): `export_hf`."""
    if fmt != "hf":
        raise ConvertError(f"export format {fmt!r} is not supported; export writes 'hf' (Hugging Face Llama)")
    return export_hf(ckpt, out, overwrite=overwrite, trust_code=trust_code)


def _check_target(out: str | os.PathLike, overwrite: bool, what: str) -> None:
    """An existing target without overwrite, or an unwritable one, refused before any weight is read."""
    from toto_lens.io import check_writable

    target = Path(out).expanduser()
    if target.exists() and not overwrite:
        raise ConvertError(f"{target} already exists; pass --overwrite to replace it")
    check_writable(target, what)


def export_hf(
    ckpt: str | os.PathLike, out: str | os.PathLike, *, overwrite: bool = False, trust_code: bool = False
) -> Path:
    """Write checkpoint `ckpt` as a Hugging Face Llama folder (config.json + model.safetensors) at `out`,
    atomically; `transformers.LlamaForCausalLM.from_pretrained(out)` computes the same logits."""
    import torch
    from safetensors.torch import save_file

    from toto_lens.checkpoints import load_checkpoint

    _check_target(out, overwrite, "--out")
    source = load_checkpoint(ckpt, trust_code=trust_code)
    weights = cast(to_llama_state(source.model.state_dict(), source.config, "hf"), torch.float32)
    imported = source.training.get("imported") or {}
    extra = {"checkpoint": source.name, "sha256": source.sha256, "layout": imported.get("layout")}
    text = to_json(llama_config(source.config, extra), "Llama config", ConvertError)
    with atomic_folder(out, overwrite=overwrite, error=ConvertError) as tmp:
        save_file(weights, str(tmp / WEIGHTS), metadata={"format": "pt"})
        (tmp / CONFIG).write_text(text)
    return Path(out).expanduser()


def import_hf(
    folder: str | os.PathLike,
    name: str | os.PathLike,
    *,
    tokenizer: str | None = None,
    layout: str | tuple[int, int, int] | None = None,
    specials: dict[str, int | None] | None = None,
    first_code_id: int | None = None,
    overwrite: bool = False,
    trust_code: bool = False,
) -> Path:
    """Save a Hugging Face Llama folder as a Toto checkpoint `name` (registry name or folder path).

    tokenizer: a name or folder `load_tokenizer` accepts, or a tokenizer spec file (`*.json`, the dict
    `tokenizer_from_spec` takes, e.g. an external VQGAN adapter's); saved with the checkpoint (spec, state).
    layout: frames, rows, cols of a clip ("F,R,C"), recorded in `training["imported"]["layout"]`.
    specials, first_code_id: see `config_from_llama`. Returns the checkpoint folder.
    """

    from toto_lens.checkpoints import CONFIG as CKPT_CONFIG
    from toto_lens.checkpoints import checkpoint_path, save_checkpoint
    from toto_lens.model import Toto
    from toto_lens.paths import is_bare_name

    target = checkpoint_path(name)
    if (target / CKPT_CONFIG).exists() and not overwrite:
        raise ConvertError(f"checkpoint {target} already exists; pass --overwrite to replace it")
    _check_target(
        target, True, "--name (a folder path) or TOTO_LENS_CACHE" if is_bare_name(str(name)) else "--name"
    )
    if tokenizer is not None:  # a name, a folder or a spec file; one naming code needs trust_code
        from toto_lens.tokenizers.named import check_tokenizer

        check_tokenizer(tokenizer, trust_code=trust_code)
    root = Path(folder).expanduser()
    hf, state = read_llama_folder(root)
    if (
        not hf.get("toto_lens")
        and all(v is None for v in (specials or {}).values())
        and first_code_id is None
    ):
        raise ConvertError(
            f"{root / CONFIG} does not say which ids start and end a clip or where the visual codes start "
            "(a Llama's bos/eos ids may be codes); give them: --start-video, --start-image, --end, --pad "
            "and --code-offset (docs/public-models.md)"
        )
    config = config_from_llama(hf, name=Path(name).name, specials=specials, first_code_id=first_code_id)
    ours = to_toto_state(state, config)
    check_state(ours, config, "hf")
    grid = parse_layout(layout if layout is not None else (hf.get("toto_lens") or {}).get("layout"), config)
    tok_spec, tok_state = _tokenizer(tokenizer, config, grid, trust_code)
    record = {"source": str(root.resolve()), "format": "hf", "layout": grid, "tokenizer": tokenizer}
    model = Toto.empty(config)  # only its config is read: the weights saved are `ours`, as stored
    return save_checkpoint(
        model,
        name,
        tokenizer=tok_spec,
        tokenizer_state=tok_state,
        training={"imported": record},
        overwrite=overwrite,
        weights=ours,
    )


def parse_layout(layout: str | tuple | dict | None, config: ModelConfig) -> dict[str, int] | None:
    """{"frames", "rows", "cols"} of "F,R,C" (or a tuple, or such a dict); checked against the context."""
    if layout is None:
        return None
    if isinstance(layout, dict):
        layout = tuple(layout.get(k) for k in ("frames", "rows", "cols"))
    try:
        parts = [int(v) for v in (layout.split(",") if isinstance(layout, str) else layout)]
    except (TypeError, ValueError):
        parts = []
    if len(parts) != 3 or min(parts) <= 0:
        raise ConvertError(f"layout must be three positive integers FRAMES,ROWS,COLS, got {layout!r}")
    frames, rows, cols = parts
    if frames * rows * cols + 2 > config.context_length:
        raise ConvertError(
            f"layout {frames}×{rows}×{cols} needs {frames * rows * cols + 2} positions (start and end "
            f"included) but the model holds {config.context_length}"
        )
    return {"frames": frames, "rows": rows, "cols": cols}


def _tokenizer(
    spec: str | None,
    config: ModelConfig,
    grid: dict[str, int] | None,
    trust_code: bool = False,
):
    if spec is None:
        return None, None
    from toto_lens.tokenizers import load_tokenizer

    tok = load_tokenizer(spec, trust_code=trust_code)
    if tok.vocab_size > config.num_codes:
        raise ConvertError(
            f"tokenizer {spec!r} has {tok.vocab_size} codes but the model has {config.num_codes} "
            f"(ids {config.code_offset} … {config.code_offset + config.num_codes - 1})"
        )
    if grid is not None and tuple(tok.grid) != (grid["rows"], grid["cols"]):
        raise ConvertError(
            f"tokenizer {spec!r} makes {tok.grid[0]}×{tok.grid[1]} grids but the layout says "
            f"{grid['rows']}×{grid['cols']}"
        )
    return tok.spec, tok.state_dict() or None
