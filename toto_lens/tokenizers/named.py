"""Named tokenizers fitted on the bundled data, and the report that says how good a tokenizer is.

`load_tokenizer("kmeans-512")` reads `<cache>/tokenizers/kmeans-512/` and, the first time, fits it: the
names `kmeans-N` and `random-N` stand for a patch k-means or a random codebook with N codes, fitted
deterministically (seed 0, 4×4 patches; `random-8192-p2` for 2×2) on the grey frames of the bundled
train split, so they take grey frames (their spec says "channels": 1). Every `random-N` shares
one projection (same frames, same seed), so they differ only in their codebook, as appendix A.4 wants.
A path to a folder written by `save_tokenizer` loads as it is.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from toto_lens.paths import cache_root, is_bare_name
from toto_lens.tokenizers.base import Tokenizer, TokenizerError
from toto_lens.tokenizers.kmeans import PatchKMeans
from toto_lens.tokenizers.random_codebook import RandomCodebook
from toto_lens.tokenizers.registry import load_tokenizer_dir, save_tokenizer, tokenizer_from_spec

KINDS = {"kmeans": PatchKMeans, "random": RandomCodebook}
NAME = re.compile(r"^(?P<kind>kmeans|random)-(?P<vocab>[0-9]+)(-p(?P<patch>[0-9]+))?$")
DEFAULT_PATCH = 4  # a name without -pP fits 4×4 patches
NAME_FORMS = "kmeans-N or random-N (N codes; -pP for P×P patches, e.g. random-8192-p2)"
# Frames the named tokenizers fit on: videos and image sequences of the train split, 4,096 frames.
FIT_VIDEO_CLIPS, FIT_IMAGE_CLIPS = 192, 64
BUNDLED_SIZE = 32  # the bundled frames are 32×32 pixels
FIT_DATA = "fit_data.json"  # beside a named fit: the data it was fitted on, to notice when that changes


def tokenizers_dir() -> Path:
    return cache_root() / "tokenizers"


def bundled_frames(
    split: str = "train", video_clips: int = 192, image_clips: int = 64, seed: int = 0
) -> np.ndarray:
    """Frames (N, H, W) of both bundled sources, videos first."""
    from toto_lens.data import ImageSequences, MovingDigits, stack_frames

    parts = [stack_frames(MovingDigits(split, video_clips, seed=seed))]
    if image_clips:
        parts.append(stack_frames(ImageSequences(split, image_clips, seed=seed)))
    return np.concatenate(parts)


def fit_tokenizer(
    kind: str,
    vocab_size: int,
    *,
    patch: int = 4,
    seed: int = 0,
    frames: np.ndarray | None = None,
    name: str | None = None,
    progress=None,
    channels: int | None = None,
) -> Tokenizer:
    """Fit a `kmeans` or `random` tokenizer, on the bundled (grey) train frames unless frames are given.

    channels: of the given frames ([N, H, W] grey or [N, H, W, C]); None reads it from their shape
    (`base.fit_channels`).
    progress (`toto_lens.progress`) hears what is fitted on, the k-means seeding code by code, and the end."""
    from toto_lens.progress import say

    if kind not in KINDS:
        raise TokenizerError(f"unknown tokenizer kind {kind!r}; choose one of: {', '.join(KINDS)}")
    if not isinstance(vocab_size, int) or vocab_size <= 0:
        raise TokenizerError(f"vocab must be a positive integer, got {vocab_size!r}")
    task = f"fit {name or f'{kind}-{vocab_size}'}"
    if frames is None:
        n = (FIT_VIDEO_CLIPS + FIT_IMAGE_CLIPS) * 16
        say(progress, task, f"rendering {n:,} frames of the bundled train split to fit on")
        frames = bundled_frames("train", FIT_VIDEO_CLIPS, FIT_IMAGE_CLIPS)
    what = "k-means" if kind == "kmeans" else "a projection and a random codebook"
    say(progress, task, f"fitting {what} with {vocab_size:,} codes, {patch}×{patch} patches")
    extra = {"progress": progress, "task": task} if kind == "kmeans" else {}
    tok = KINDS[kind].fit(
        frames, vocab_size=vocab_size, patch=patch, seed=seed, name=name, channels=channels, **extra
    )
    say(progress, task, "done")
    return tok


def load_tokenizer(
    name_or_path: str | os.PathLike, *, fit_missing: bool = True, trust_code: bool = False, progress=None
) -> Tokenizer:
    """A tokenizer by folder path, by spec file (`adapter.json`: a spec with no state, e.g. an external
    adapter that loads its own weights), or by name from the cache (fitting `kmeans-N` / `random-N` once).

    trust_code: allow a folder or spec file that names code (an external factory) to import it
    (`--trust-code`). progress: hears of a fit (`toto_lens.progress`)."""
    path = Path(name_or_path).expanduser()
    if (path / "tokenizer.json").is_file():
        return load_tokenizer_dir(path, trust_code=trust_code)
    spec = read_spec_file(path, trust_code)
    if spec is not None:
        return tokenizer_from_spec(spec, {}, trust_code=trust_code)
    text = str(name_or_path)
    folder = tokenizers_dir() / text
    match = NAME.match(text) if is_bare_name(text) else None
    if is_bare_name(text) and (folder / "tokenizer.json").is_file() and not _stale(folder):
        return load_tokenizer_dir(folder, trust_code=trust_code)
    if match and fit_missing:
        patch = int(match["patch"] or DEFAULT_PATCH)
        tok = fit_tokenizer(match["kind"], int(match["vocab"]), patch=patch, name=text, progress=progress)
        try:
            save_tokenizer(tok, folder, overwrite=folder.exists())
        except TokenizerError:  # another process saved the same deterministic fit first
            return load_tokenizer_dir(folder)
        (folder / FIT_DATA).write_text(json.dumps(fit_data_spec()))
        return tok
    have = (
        sorted(p.parent.name for p in tokenizers_dir().glob("*/tokenizer.json"))
        if tokenizers_dir().is_dir()
        else []
    )
    raise TokenizerError(
        f"no tokenizer {text!r} (looked for {path}/tokenizer.json and {folder}); cached: "
        f"{', '.join(have) or 'none'}; use {NAME_FORMS}, or fit one with `toto-lens tokenizer fit`"
    )


def check_tokenizer(name_or_path: str | os.PathLike, *, trust_code: bool = False) -> None:
    """Fail now, without fitting or loading, when `load_tokenizer` would fail: an unknown name, a folder
    whose spec names code without trust_code. Called before any expensive step."""
    from toto_lens.io import read_json
    from toto_lens.tokenizers.registry import require_trust

    path = Path(name_or_path).expanduser()
    text = str(name_or_path)
    if read_spec_file(path, trust_code) is not None:
        return
    for folder in (path, tokenizers_dir() / text if is_bare_name(text) else None):
        if folder is not None and (folder / "tokenizer.json").is_file():
            spec = read_json(folder / "tokenizer.json", redo="save the tokenizer again", error=TokenizerError)
            require_trust(spec, trust_code, f"the tokenizer in {folder}")
            return
    if is_bare_name(text) and NAME.match(text):
        return
    load_tokenizer(name_or_path, fit_missing=False)  # raises the one-line "no tokenizer" error


def read_spec_file(path: Path, trust_code: bool) -> dict[str, Any] | None:
    """The spec in a tokenizer spec file (a path ending in .json that is not a folder; a missing one is
    named), refused unless trusted when it names code to import; None for anything else. Nothing is
    imported here."""
    from toto_lens.io import read_json
    from toto_lens.tokenizers.registry import require_trust

    if path.suffix.lower() != ".json" or path.is_dir():
        return None
    spec = read_json(
        path, redo="write the tokenizer spec (a JSON object with a 'kind') there", error=TokenizerError
    )
    require_trust(spec, trust_code, f"the tokenizer spec {path}")
    return spec


def fit_data_spec() -> list[dict[str, Any]]:
    """The sources (with every generation parameter) that named tokenizers are fitted on."""
    from toto_lens.data import ImageSequences, MovingDigits

    return [MovingDigits("train", FIT_VIDEO_CLIPS).spec, ImageSequences("train", FIT_IMAGE_CLIPS).spec]


def _stale(folder: Path) -> bool:
    """A named fit whose bundled data has changed since (a toto-lens upgrade): fit it again."""
    recorded = folder / FIT_DATA
    return recorded.is_file() and json.loads(recorded.read_text()) != json.loads(json.dumps(fit_data_spec()))


def tokenizer_report(tok: Tokenizer, frames: np.ndarray) -> dict[str, Any]:
    """Reconstruction error and codebook usage of `tok` on frames (N, H, W) or (N, H, W, C) it was not
    fitted on."""
    ids = tok.encode(frames)
    frames = np.asarray(frames, dtype=np.float32)
    recon = tok.decode(ids).reshape(frames.shape)  # grey frames given as (N, H, W, 1) decode to (N, H, W)
    mse = float(np.mean((recon - frames) ** 2))
    used = np.unique(ids)
    return {
        "name": tok.name,
        "kind": tok.spec["kind"],
        "vocab_size": tok.vocab_size,
        "frames": int(len(frames)),
        "mse": mse,
        "psnr_db": float(10 * np.log10(1.0 / max(mse, 1e-12))),
        "codes_used": int(len(used)),
        "codebook_usage": float(len(used) / tok.vocab_size),
        "dead_codes": int(tok.vocab_size - len(used)),
    }


REPORT_CLIPS = 64  # val clips (videos and image sequences alike) that fit reports are measured on


def fit_and_save(
    kind: str,
    vocab: int,
    out: str | os.PathLike,
    *,
    patch: int = 4,
    seed: int = 0,
    start: str | None = None,
    data: str | None = None,
    clips: int = FIT_VIDEO_CLIPS + FIT_IMAGE_CLIPS,
    overwrite: bool = False,
    trust_code: bool = False,
    progress=None,
) -> dict[str, Any]:
    """Fit a tokenizer on the bundled train frames, or on `clips` train clips of the source `data` (an
    image or video folder: grey or colour, the channels read from its frames), or, with `start`, re-draw
    a random codebook's codes at another vocabulary size; save it to `out` (a bare name:
    cache/tokenizers/NAME) and return its report on validation frames (of `data` when given):
    reconstruction MSE and PSNR, codebook usage, seconds to fit, path.

    Every argument is checked before the fit, which can take minutes."""
    import time

    from toto_lens.io import check_writable
    from toto_lens.tokenizers.registry import save_tokenizer

    if kind not in KINDS:
        raise TokenizerError(f"unknown tokenizer kind {kind!r}; choose one of: {', '.join(KINDS)}")
    if not isinstance(vocab, int) or vocab <= 0:
        raise TokenizerError(f"--vocab must be a positive integer, got {vocab!r}")
    if start is not None and kind != "random":
        raise TokenizerError("--from changes the vocabulary of a random codebook; use it with --kind random")
    if data is not None and start is not None:
        raise TokenizerError("--from re-draws a fitted codebook; it takes no --data")
    source = _fit_source(data, "train", clips) if data is not None else None
    h, w = source[0].frames.shape[1:3] if source is not None else (BUNDLED_SIZE, BUNDLED_SIZE)
    if start is None and (not isinstance(patch, int) or patch <= 0 or h % patch or w % patch):
        what = f"the {h}×{w} frames of {data}" if data else f"the bundled {h}×{w} frames"
        raise TokenizerError(f"--patch {patch} does not divide {what}; pick a patch that divides both sides")
    if not str(out).strip():
        raise TokenizerError("--out must name a folder or a bare name")
    folder = tokenizers_dir() / str(out) if is_bare_name(str(out)) else Path(out).expanduser()
    if folder.exists() and not overwrite:  # checked before fitting, which can take a while
        raise TokenizerError(f"{folder} already exists; pass --overwrite to replace it")
    check_writable(folder, "--out")
    if start is not None:
        check_tokenizer(start, trust_code=trust_code)
    t0 = time.perf_counter()
    if start is not None:
        base = load_tokenizer(start, trust_code=trust_code)
        if kind != "random" or not isinstance(base, RandomCodebook):
            raise TokenizerError(
                "--from changes the vocabulary of a random codebook; use it with --kind random"
            )
        tok = base.with_vocab(vocab, seed=seed, name=folder.name)
    else:
        from toto_lens.data import stack_frames

        fit_on = stack_frames(source) if source is not None else None
        tok = fit_tokenizer(
            kind, vocab, patch=patch, seed=seed, name=folder.name, frames=fit_on, progress=progress
        )
    seconds = time.perf_counter() - t0
    save_tokenizer(tok, folder, overwrite=overwrite)
    if data is not None:
        from toto_lens.data import stack_frames

        frames = stack_frames(_fit_source(data, "val", REPORT_CLIPS))
    else:
        frames = bundled_frames("val", REPORT_CLIPS, REPORT_CLIPS // 4)
    return {**tokenizer_report(tok, frames), "fit_seconds": round(seconds, 2), "path": str(folder)}


def _fit_source(data: str, split: str, clips: int):
    """The clips of a user's source a tokenizer is fitted on (train) or measured on (val)."""
    from toto_lens.data import open_source

    source = open_source(data, split=split, n_clips=clips)
    if getattr(source, "tokenized", False):
        raise TokenizerError(f"{data} holds codes already; fit a tokenizer on a source of frames")
    return source


def check_channels(clip: Any, tok: Any, data: str) -> None:
    """Refuse clips whose frames have other channels than the tokenizer takes, before anything is written
    (a clip of codes has no frames to check)."""
    from toto_lens.tokenizers.base import channels_of

    if clip.frames is None or clip.channels == channels_of(tok):
        return
    have, want = clip.channels, channels_of(tok)
    words = {1: "grey", 3: "RGB"}
    raise TokenizerError(
        f"the clips of {data} have {have} channel{'s' * (have > 1)} ({words.get(have, 'colour')}) but the "
        f"tokenizer {tok.spec.get('name')} takes {want} ({words.get(want, 'colour')}); fit one on these clips "
        f"(toto-lens tokenizer fit --data {data} …)"
        + (", or add ?mode=grey to the source" if want == 1 else "")
    )
