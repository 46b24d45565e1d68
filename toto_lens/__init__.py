"""toto-lens: study what the layers of Toto models learn.

Public API: `ModelConfig`, `Toto`, `variants()`, `load_checkpoint`, `save_checkpoint`, `Checkpoint`,
`capture` and `extract` (`toto_lens.run`), `open_cache` (`toto_lens.store`); the questions of the Toto
appendix are answered by `toto_lens.studies` (docs/architecture.md draws the floors).
Attributes are imported on first use (PEP 562) so that `toto-lens --help` does not pay for torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from toto_lens._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "ModelConfig": "toto_lens.config",
    "variants": "toto_lens.config",
    "Toto": "toto_lens.model",
    "Checkpoint": "toto_lens.checkpoints",
    "load_checkpoint": "toto_lens.checkpoints",
    "save_checkpoint": "toto_lens.checkpoints",
    "list_checkpoints": "toto_lens.checkpoints",
    "TotoLensError": "toto_lens.errors",
    "open_cache": "toto_lens.store.reader",
    "capture": "toto_lens.run.hooks",
    "extract": "toto_lens.run.extractor",
}

__all__ = [
    "Checkpoint",
    "ModelConfig",
    "Toto",
    "TotoLensError",
    "__version__",
    "capture",
    "extract",
    "list_checkpoints",
    "load_checkpoint",
    "open_cache",
    "save_checkpoint",
    "variants",
]

if TYPE_CHECKING:
    from toto_lens.checkpoints import Checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
    from toto_lens.config import ModelConfig, variants
    from toto_lens.errors import TotoLensError
    from toto_lens.model import Toto
    from toto_lens.run.extractor import extract
    from toto_lens.run.hooks import capture
    from toto_lens.store.reader import open_cache


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
