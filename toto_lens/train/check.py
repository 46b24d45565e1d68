"""Every argument of a training run, checked before anything expensive (a tokenizer fit, rendering clips).

Imports neither torch nor the model, so that `toto-lens train` with a mistyped source, tokenizer, variant
or an unwritable --name answers at once instead of after minutes of tokenizer fitting.
"""

from __future__ import annotations

from pathlib import Path

from toto_lens.checkpoints import checkpoint_path
from toto_lens.errors import ConfigError
from toto_lens.train.config import TrainConfig, model_config


def check_run(cfg: TrainConfig, name: str, *, trust_code: bool = False) -> Path:
    """Every argument of a run checked in well under a second: the name and its folder (writable, not a
    folder of something else), the variant and width, each data source and that their clips agree, the
    tokenizer's name (and trust). Returns the checkpoint folder."""
    from toto_lens.data import check_source, open_source
    from toto_lens.data.mix import parse_mix
    from toto_lens.io import check_writable
    from toto_lens.paths import is_bare_name
    from toto_lens.tokenizers.named import check_tokenizer

    text = str(name)
    if not text.strip() or Path(text).name in ("", ".", ".."):
        raise ConfigError(f"--name {text!r} names no checkpoint; give a name (demo) or a folder path")
    folder = checkpoint_path(text)
    if folder.exists() and not (folder / "config.json").is_file() and any(folder.iterdir()):
        raise ConfigError(f"--name {text}: {folder} is a folder but not a checkpoint; choose another --name")
    model_config(cfg, 1, 1)  # the variant and --width (a width the heads do not divide fails here)
    mix = parse_mix(cfg.data)
    for source in mix:
        check_source(source)
    check_tokenizer(cfg.tokenizer, trust_code=trust_code)
    shapes = {s: clip_shape(open_source(s, split="val", n_clips=1)[0]) for s in mix}
    if len(set(shapes.values())) > 1:
        sizes = ", ".join(f"{k} {v}" for k, v in shapes.items())
        raise ConfigError(f"sources of one mix must have clips of one shape: {sizes}")
    check_tokenizer(cfg.tokenizer, trust_code=trust_code)
    check_writable(folder, "--name (a folder path) or TOTO_LENS_CACHE" if is_bare_name(text) else "--name")
    return folder


def clip_shape(clip) -> str:
    """A clip's shape in words: frames × height × width (× channels), or frames × rows × cols of codes."""
    if clip.frames is None:
        return "×".join(map(str, clip.codes.shape)) + " codes"
    return "×".join(map(str, clip.frames.shape)) + ("" if clip.channels == 1 else " (colour)")
