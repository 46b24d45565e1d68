"""Visual tokenizers behind one protocol: frames [F, H, W] (grey) or [F, H, W, C] ↔ ids [F, rows, cols].

    PatchKMeans      k-means codebook over pixel patches (iGPT's palette idea on patches; the dVAE stand-in)
    RandomCodebook   PCA latent + random Gaussian codebook, any vocabulary without refit (Toto appendix A.4)
    ExternalTokenizer / load_external   a user's own dVAE / VQGAN on disk (see adapter.py)

Rebuild any of them from a spec and state with `tokenizer_from_spec`; save and load folders with
`save_tokenizer` / `load_tokenizer_dir`; `load_tokenizer("kmeans-512")` fits named ones on the bundled
data once and caches them (named.py). Importing this package costs numpy only: sklearn, scipy, torch
and safetensors are imported inside the functions that use them.
"""

from toto_lens.tokenizers.adapter import ExternalTokenizer, load_external
from toto_lens.tokenizers.base import (
    PatchTokenizer,
    Tokenizer,
    TokenizerError,
    TokenizerProtocol,
    channels_of,
    patchify,
    unpatchify,
)
from toto_lens.tokenizers.kmeans import PatchKMeans
from toto_lens.tokenizers.named import (
    bundled_frames,
    check_channels,
    check_tokenizer,
    fit_tokenizer,
    load_tokenizer,
    tokenizer_report,
)
from toto_lens.tokenizers.random_codebook import RandomCodebook
from toto_lens.tokenizers.registry import (
    load_tokenizer_dir,
    register_tokenizer,
    registered_kinds,
    save_tokenizer,
    tokenizer_from_spec,
)

__all__ = [
    "ExternalTokenizer",
    "PatchKMeans",
    "PatchTokenizer",
    "RandomCodebook",
    "Tokenizer",
    "TokenizerError",
    "TokenizerProtocol",
    "bundled_frames",
    "channels_of",
    "check_channels",
    "check_tokenizer",
    "fit_tokenizer",
    "load_external",
    "load_tokenizer",
    "load_tokenizer_dir",
    "patchify",
    "register_tokenizer",
    "registered_kinds",
    "save_tokenizer",
    "tokenizer_from_spec",
    "tokenizer_report",
    "unpatchify",
]
