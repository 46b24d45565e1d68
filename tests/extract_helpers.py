"""Checkpoints for extraction tests: real safetensors checkpoints with a fitted tokenizer and data spec."""

import torch

from toto_lens.checkpoints import save_checkpoint
from toto_lens.config import NUM_SPECIAL, ModelConfig
from toto_lens.model import Toto
from toto_lens.tokenizers import load_tokenizer

TOKENIZER = "kmeans-64"


def make_checkpoint(name: str, model: str = "toto-debug", seed: int = 0) -> str:
    """A randomly initialised checkpoint that records the tokenizer and training data, as `train` does."""
    tok = load_tokenizer(TOKENIZER)
    config = ModelConfig.from_name(model).replace(vocab_size=tok.vocab_size + NUM_SPECIAL)
    torch.manual_seed(seed)
    state = {k: torch.as_tensor(v) for k, v in tok.state_dict().items()}
    save_checkpoint(
        Toto(config), name, tokenizer=tok.spec, tokenizer_state=state,
        training={"step": 0, "config": {"data": "moving-digits", "data_seed": 0, "tokenizer": TOKENIZER}},
    )  # fmt: skip
    return name
