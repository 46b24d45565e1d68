"""The tokenizer protocol: frames in [0, 1] → a grid of integer codes per frame, and back.

Every tokenizer, built in or a user's own dVAE/VQGAN (see `adapter.py`), answers the same calls so that
the data, training and analysis floors never ask which one they hold:

    encode(frames [F, H, W] or [B, F, H, W] float in [0, 1]) → ids int64 [F, rows, cols] / [B, F, rows, cols]
    decode(ids) → frames float32, the same leading shape back
    vocab_size (visual codes only: the model offsets them, token id = code + NUM_SPECIAL in config.py),
    grid (rows, cols), patch (pixels per token side), image_size (H, W), spec (JSON), state_dict (arrays)

`Tokenizer` does the checking and the [B, F] bookkeeping once; a subclass only maps a stack of frames
[N, H, W] to ids [N, rows, cols] and back. `PatchTokenizer` goes one step further for tokenizers that
treat each patch on its own (k-means, random codebook): it cuts frames into patches as ViT/iGPT do and
the subclass maps vectors [M, patch²] to codes [M] and back. A tokenizer is rebuilt from (spec, state)
by `tokenizer_from_spec` (see `registry.py`), which dispatches on spec["kind"].
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Protocol, runtime_checkable

import numpy as np

from toto_lens.errors import TotoLensError

# Frames a little outside [0, 1] (resampling overshoot, float16 round-off) are clipped, not refused.
RANGE_TOLERANCE = 1e-3


class TokenizerError(TotoLensError, ValueError):
    """A tokenizer that cannot be built, loaded or fed the given input."""


@runtime_checkable
class TokenizerProtocol(Protocol):
    """What the rest of toto-lens relies on. `Tokenizer` satisfies it; an adapter may duck-type it."""

    @property
    def vocab_size(self) -> int: ...

    @property
    def grid(self) -> tuple[int, int]: ...

    @property
    def spec(self) -> dict[str, Any]: ...

    def encode(self, frames: np.ndarray) -> np.ndarray: ...

    def decode(self, ids: np.ndarray) -> np.ndarray: ...

    def state_dict(self) -> dict[str, np.ndarray]: ...


def patchify(frames: np.ndarray, patch: int) -> np.ndarray:
    """[N, H, W] → [N, rows, cols, patch·patch], each patch flattened in raster order (as ViT/iGPT)."""
    n, h, w = frames.shape
    rows, cols = h // patch, w // patch
    x = frames.reshape(n, rows, patch, cols, patch)  # (N, rows, p, cols, p)
    x = x.transpose(0, 1, 3, 2, 4)  # (N, rows, cols, p, p)
    return x.reshape(n, rows, cols, patch * patch)


def unpatchify(patches: np.ndarray, patch: int) -> np.ndarray:
    """[N, rows, cols, patch·patch] → [N, H, W]: the inverse of `patchify`."""
    n, rows, cols, _ = patches.shape
    x = patches.reshape(n, rows, cols, patch, patch)  # (N, rows, cols, p, p)
    x = x.transpose(0, 1, 3, 2, 4)  # (N, rows, p, cols, p)
    return x.reshape(n, rows * patch, cols * patch)


def check_frames(
    frames: Any, image_size: tuple[int, int] | None = None
) -> tuple[np.ndarray, tuple[int, ...]]:
    """Validate frames [F, H, W] or [B, F, H, W] float in [0, 1]; return them as [N, H, W] float32 and
    the leading shape (F,) or (B, F). image_size=None accepts any H, W (fitting)."""
    if hasattr(frames, "detach"):  # a torch tensor: numpy view of its CPU copy, no torch import here
        frames = frames.detach().cpu().numpy()
    x = np.asarray(frames)
    if x.ndim not in (3, 4):
        raise TokenizerError(
            f"frames must be [F, H, W] or [B, F, H, W], got shape {tuple(x.shape)}; "
            "add a frame axis for a single image (x[None])"
        )
    if not np.issubdtype(x.dtype, np.floating):
        hint = "divide uint8 images by 255" if x.dtype == np.uint8 else "convert them to float in [0, 1]"
        raise TokenizerError(f"frames must be float in [0, 1], got dtype {x.dtype}; {hint}")
    h, w = x.shape[-2:]
    if image_size is not None and (h, w) != tuple(image_size):
        eh, ew = image_size
        raise TokenizerError(
            f"frames are {h}×{w} pixels but this tokenizer takes {eh}×{ew}; "
            f"resize or pad them to {eh}×{ew}, or fit a tokenizer on {h}×{w} frames"
        )
    lead = tuple(x.shape[:-2])
    x = x.reshape(-1, h, w).astype(np.float32, copy=False)
    if x.size:
        lo, hi = float(x.min()), float(x.max())
        if not (lo >= -RANGE_TOLERANCE and hi <= 1 + RANGE_TOLERANCE):  # also catches NaN
            raise TokenizerError(
                f"frame values must lie in [0, 1], got min {lo:.4g} and max {hi:.4g}; "
                "rescale them (e.g. x / 255, or (x - x.min()) / (x.max() - x.min())) and drop NaN/inf"
            )
        if lo < 0 or hi > 1:
            x = np.clip(x, 0.0, 1.0)
    return x, lead


def check_positive(name: str, value: Any) -> int:
    """A positive int from a config value (bools and floats refused), or a one-line TokenizerError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise TokenizerError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_protocol(tok: Any, origin: str) -> None:
    """Refuse an object that lacks part of the tokenizer protocol, naming what is missing."""
    needed = ("encode", "decode", "vocab_size", "grid", "spec", "state_dict")
    missing = [name for name in needed if not hasattr(tok, name)]
    if missing:
        raise TokenizerError(
            f"{origin} returned a {type(tok).__name__} without {', '.join(missing)}; a tokenizer needs "
            f"{', '.join(needed)} (subclass toto_lens.tokenizers.ExternalTokenizer to get most of them)"
        )
    check_positive(f"{origin}: vocab_size", tok.vocab_size)
    grid = tuple(tok.grid)
    if len(grid) != 2 or any(
        isinstance(g, bool) or not isinstance(g, (int, np.integer)) or g <= 0 for g in grid
    ):
        raise TokenizerError(f"{origin}: grid must be (rows, cols) of positive ints, got {tok.grid!r}")


class Tokenizer(ABC):
    """Base of every tokenizer: validation, [B, F] batching and the spec; subclasses map frames ↔ ids.

    `patch` is the side in pixels that one token covers (the downsampling factor of a dVAE/VQGAN), so
    the grid is (H / patch, W / patch).
    """

    kind: str = "abstract"  # the registry key that rebuilds it (registry.register_tokenizer)

    def __init__(self, *, patch: int, image_size: tuple[int, int], seed: int = 0, name: str | None = None):
        self.patch = check_positive("patch", patch)
        if not isinstance(image_size, (tuple, list)) or len(image_size) != 2:
            raise TokenizerError(f"image_size must be (H, W), got {image_size!r}")
        h, w = (check_positive("image height", image_size[0]), check_positive("image width", image_size[1]))
        if h % self.patch or w % self.patch:
            raise TokenizerError(
                f"image size {h}×{w} is not a multiple of patch {self.patch}; "
                "pick a patch that divides both sides, or pad the frames"
            )
        self.image_size = (h, w)
        self.seed = int(seed)
        self.name = name or self.default_name()

    # ---- what a subclass provides -------------------------------------------------------------------

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of visual codes, special ids not counted."""

    @abstractmethod
    def _encode_frames(self, frames: np.ndarray) -> np.ndarray:
        """[N, H, W] float32 in [0, 1] → [N, rows, cols] int64 in [0, vocab_size)."""

    @abstractmethod
    def _decode_frames(self, ids: np.ndarray) -> np.ndarray:
        """[N, rows, cols] int64, already range-checked → [N, H, W] float32."""

    @abstractmethod
    def state_dict(self) -> dict[str, np.ndarray]:
        """Arrays that, with `spec`, rebuild this tokenizer exactly (float32/int, never pickled)."""

    @classmethod
    @abstractmethod
    def from_state(cls, spec: dict[str, Any], state: dict[str, np.ndarray]) -> Tokenizer:
        """Rebuild from `spec` and `state_dict()`; the registry calls this."""

    def hyperparameters(self) -> dict[str, Any]:
        """Extra JSON-serialisable fields of the spec (latent size, normalisation …)."""
        return {}

    def default_name(self) -> str:
        return f"{self.kind}-p{self.patch}"

    # ---- the protocol ---------------------------------------------------------------------------------

    @property
    def grid(self) -> tuple[int, int]:
        return (self.image_size[0] // self.patch, self.image_size[1] // self.patch)

    @property
    def spec(self) -> dict[str, Any]:
        spec = {
            "kind": self.kind,
            "name": self.name,
            "vocab_size": int(self.vocab_size),
            "patch": self.patch,
            "image_size": list(self.image_size),
            "grid": list(self.grid),
            "seed": self.seed,
        }
        spec.update(self.hyperparameters())
        return spec

    def encode(self, frames: np.ndarray) -> np.ndarray:
        """frames [F, H, W] or [B, F, H, W] float in [0, 1] → ids int64 [F, rows, cols] / [B, F, rows, cols]."""
        x, lead = check_frames(frames, self.image_size)
        ids = np.asarray(self._encode_frames(x), dtype=np.int64)  # (N, rows, cols)
        return ids.reshape(*lead, *self.grid)

    def decode(self, ids: np.ndarray) -> np.ndarray:
        """ids [F, rows, cols] or [B, F, rows, cols] in [0, vocab_size) → frames float32 in [0, 1]."""
        if hasattr(ids, "detach"):
            ids = ids.detach().cpu().numpy()
        a = np.asarray(ids)
        rows, cols = self.grid
        if a.ndim not in (3, 4) or a.shape[-2:] != (rows, cols):
            raise TokenizerError(
                f"ids must be [F, {rows}, {cols}] or [B, F, {rows}, {cols}] for this tokenizer, "
                f"got shape {tuple(a.shape)}; reshape a flat token sequence per frame first"
            )
        if a.dtype == bool or not np.issubdtype(a.dtype, np.integer):
            raise TokenizerError(f"ids must be integers, got dtype {a.dtype}; pass the codes from encode()")
        if a.size:
            lo, hi = int(a.min()), int(a.max())
            if lo < 0 or hi >= self.vocab_size:
                raise TokenizerError(
                    f"ids must lie in [0, {self.vocab_size}), got min {lo} and max {hi}; model token ids "
                    "carry the special-id offset: subtract NUM_SPECIAL and drop special tokens first"
                )
        lead = a.shape[:-2]
        frames = self._decode_frames(a.reshape(-1, rows, cols).astype(np.int64, copy=False))
        frames = np.clip(np.asarray(frames, dtype=np.float32), 0.0, 1.0)  # (N, H, W)
        return frames.reshape(*lead, *self.image_size)

    def __repr__(self) -> str:
        h, w = self.image_size
        return (
            f"{type(self).__name__}(name={self.name!r}, vocab_size={self.vocab_size}, {h}×{w} → {self.grid})"
        )


class PatchTokenizer(Tokenizer):
    """A tokenizer that codes each patch on its own: subclasses map vectors [M, patch²] ↔ codes [M]."""

    @abstractmethod
    def _encode_patches(self, patches: np.ndarray) -> np.ndarray:
        """[M, patch²] float32 → [M] int64 codes."""

    @abstractmethod
    def _decode_patches(self, codes: np.ndarray) -> np.ndarray:
        """[M] int64 → [M, patch²] float32 pixel values."""

    def _encode_frames(self, frames: np.ndarray) -> np.ndarray:
        patches = patchify(frames, self.patch)  # (N, rows, cols, p²)
        flat = patches.reshape(-1, patches.shape[-1])  # (M, p²)
        codes = self._encode_patches(np.ascontiguousarray(flat))  # (M,)
        return codes.reshape(patches.shape[:3])  # (N, rows, cols)

    def _decode_frames(self, ids: np.ndarray) -> np.ndarray:
        patches = self._decode_patches(ids.reshape(-1))  # (N·rows·cols, p²)
        return unpatchify(patches.reshape(*ids.shape, -1), self.patch)  # (N, H, W)


def training_patches(
    frames: np.ndarray, patch: int, max_patches: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """The distinct patches of the training frames with their counts, for fitting.

    Backgrounds make most patches identical (≈ 77% of the digit frames' patches are all zero), so
    fitting on distinct patches weighted by their counts gives the same objective as fitting on all of
    them at a fraction of the cost. Above max_patches, whole frames are subsampled (seeded) first.
    Returns (unique [U, patch²] float32, counts [U] float64, image_size).
    """
    x, _ = check_frames(frames)  # (N, H, W)
    if len(x) == 0:
        raise TokenizerError("no frames to fit on; pass at least one frame [F, H, W]")
    h, w = x.shape[1:]
    if h % patch or w % patch:
        raise TokenizerError(
            f"frames are {h}×{w}, not a multiple of patch {patch}; pick a patch dividing both"
        )
    per_frame = (h // patch) * (w // patch)
    if max_patches is not None and len(x) * per_frame > max_patches:
        keep = max(1, check_positive("max_patches", max_patches) // per_frame)
        x = x[np.sort(np.random.default_rng(seed).choice(len(x), keep, replace=False))]
    patches = np.ascontiguousarray(patchify(x, patch).reshape(-1, patch * patch))  # (M, p²)
    # One opaque row per patch: np.unique sorts bytes instead of comparing floats column by column.
    rows = patches.view(np.dtype((np.void, patches.dtype.itemsize * patches.shape[1]))).ravel()
    _, first, counts = np.unique(rows, return_index=True, return_counts=True)
    return patches[first], counts.astype(np.float64), (h, w)
