"""Checkpoints: folders on disk and the registry of named ones (`folder.py`), and the untrained
baselines of `toto-lens init` with `describe` (`baseline.py`). Everything is imported from here."""

from toto_lens.checkpoints.baseline import (
    describe,
    init_checkpoint,
    tokenizer_summary,
    variant_tokenizer,
)
from toto_lens.checkpoints.folder import (
    CONFIG,
    FORMAT,
    FORMAT_VERSION,
    REDO,
    TOKENIZER_STATE,
    WEIGHTS,
    Checkpoint,
    checkpoint_path,
    checkpoints_dir,
    default_dataset,
    file_sha256,
    list_checkpoints,
    load_checkpoint,
    read_extra,
    read_metadata,
    resolve_checkpoint,
    save_checkpoint,
    training_data,
    variant_for,
)

__all__ = [
    "CONFIG", "FORMAT", "FORMAT_VERSION", "REDO", "TOKENIZER_STATE", "WEIGHTS", "Checkpoint",
    "checkpoint_path", "checkpoints_dir", "default_dataset", "describe", "file_sha256", "init_checkpoint",
    "list_checkpoints", "load_checkpoint", "read_extra", "read_metadata", "resolve_checkpoint",
    "save_checkpoint", "tokenizer_summary", "training_data", "variant_for", "variant_tokenizer",
]  # fmt: skip
