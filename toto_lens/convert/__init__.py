"""Weights between Toto checkpoints and the Llama world: Hugging Face `LlamaForCausalLM` folders and
Meta/gpt-fast state dicts.

* `table`: one table of parameter names (ours, Hugging Face, Meta/gpt-fast) and layout detection.
* `state`: state dicts in either direction: rotary row order, gpt-fast's fused wqkv, μP folded into
  the weights on export.
* `hf`: Hugging Face folders (config.json + safetensors, sharded or not): `export_hf` (`export_checkpoint`), `import_hf`.
"""

from toto_lens.convert.hf import (
    config_from_llama,
    export_checkpoint,
    export_hf,
    import_hf,
    llama_config,
    read_llama_folder,
)
from toto_lens.convert.state import (
    check_state,
    half_to_interleaved,
    interleaved_to_half,
    split_wqkv,
    to_llama_state,
    to_toto_state,
)
from toto_lens.convert.table import ConvertError, detect_format, names

__all__ = [
    "ConvertError",
    "check_state",
    "config_from_llama",
    "detect_format",
    "export_checkpoint",
    "export_hf",
    "half_to_interleaved",
    "import_hf",
    "interleaved_to_half",
    "llama_config",
    "names",
    "read_llama_folder",
    "split_wqkv",
    "to_llama_state",
    "to_toto_state",
]
