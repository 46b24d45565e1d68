"""The tokenizer protocol: frames in [0, 1] → a grid of integer codes per frame, and back.

Every tokenizer, built in or a user's own dVAE/VQGAN (see `adapter.py`), answers the same calls so that
the data, training and analysis floors never ask which one they hold:

    encode(frames [F, H, W, C] or [B, F, H, W, C] float in [0, 1]; grey also [F, H, W] or [B, F, H, W])
        → ids int64 [F, rows, cols] / [B, F, rows, cols]
    decode(ids) → frames float32, the same leading shape back ([..., H, W] grey, [..., H, W, C])
    vocab_size (visual codes only: the model offsets them, token id = code + NUM_SPECIAL in config.py),
    grid (rows, cols), patch (pixels per token side), image_size (H, W), channels (C), spec (JSON),
    state_dict (arrays)

Channels. Frames carry their channels last, as images do in numpy and PIL. A tokenizer takes one number
of channels (`channels`, 1 by default; a spec without the key, as every older one, means 1). One rule
holds for what goes in, what subclasses see and what comes out: a grey frame is [H, W] and a frame of
C > 1 channels is [H, W, C] (`Tokenizer.frame_shape`). So a grey tokenizer encodes [F, H, W] and
[B, F, H, W], also accepts a trailing channel axis of 1 ([F, H, W, 1], [B, F, H, W, 1]: the same ids),
and decodes to [..., H, W] as it always did; an RGB tokenizer encodes [F, H, W, 3] or [B, F, H, W, 3]
and decodes to [..., H, W, 3]. A 4-D input to a grey tokenizer is [F, H, W, 1] when
`shape[-3:-1] == image_size and shape[-1] == 1`, else [B, F, H, W]. Frames with other channels than
the tokenizer's are refused in one line naming both counts.

`Tokenizer` does the checking and the [B, F] bookkeeping once; a subclass only maps a stack of frames
[N, H, W] (grey) or [N, H, W, C] to ids [N, rows, cols] and back. `PatchTokenizer` goes one step
further for tokenizers that treat each patch on its own (k-means, random codebook): it cuts frames into
patches as ViT/iGPT do (a patch vector holds patch·patch·C values: pixels in raster order, channels
innermost) and the subclass maps vectors [M, patch²·C] to codes [M] and back. A tokenizer is rebuilt
from (spec, state) by `tokenizer_from_spec` (see `registry.py`), which dispatches on spec["kind"].

Fitting (`training_patches`, `PatchKMeans.fit`, `RandomCodebook.fit`) takes frames [N, H, W] (grey),
[N, H, W, C], grey clips [B, F, H, W] or clips [B, F, H, W, C]. Its `channels` argument says which; left
at None it is read from the array (`fit_channels`): 3-D is grey, 5-D has its last axis as channels, and
4-D is [N, H, W, C] when the last axis is at most 4 (no frame is that narrow), else grey [B, F, H, W].
Pass channels=1 to fit grey clips [B, F, H, W] of frames 4 pixels wide or less.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Protocol, runtime_checkable

import numpy as np

from toto_lens.errors import TotoLensError

# Frames a little outside [0, 1] (resampling overshoot, float16 round-off) are clipped, not refused.
RANGE_TOLERANCE = 1e-3
# A last axis this short reads as channels when nothing else decides (a frame is never 4 pixels wide).
MAX_GUESSED_CHANNELS = 4
CHANNEL_NAMES = {1: "grey", 2: "grey + alpha", 3: "RGB", 4: "RGBA"}


class TokenizerError(TotoLensError, ValueError):
    """A tokenizer that cannot be built, loaded or fed the given input."""


@runtime_checkable
class TokenizerProtocol(Protocol):
    """What the rest of toto-lens relies on. `Tokenizer` satisfies it; an adapter may duck-type it
    (one without `channels` is taken to be grey, see `channels_of`)."""

    @property
    def vocab_size(self) -> int: ...

    @property
    def grid(self) -> tuple[int, int]: ...

    @property
    def spec(self) -> dict[str, Any]: ...

    def encode(self, frames: np.ndarray) -> np.ndarray: ...

    def decode(self, ids: np.ndarray) -> np.ndarray: ...

    def state_dict(self) -> dict[str, np.ndarray]: ...


def channels_of(tok: Any) -> int:
    """The channels a tokenizer takes: its `channels`, else its spec's "channels", else 1 (grey)."""
    channels = getattr(tok, "channels", None)
    if channels is None:
        spec = getattr(tok, "spec", None)
        channels = spec.get("channels", 1) if isinstance(spec, dict) else 1
    return check_positive("channels", channels)


def describe_channels(c: int) -> str:
    """'1 channel (grey)', '3 channels (RGB)', '5 channels'."""
    name = CHANNEL_NAMES.get(c)
    return f"{c} channel{'' if c == 1 else 's'}" + (f" ({name})" if name else "")


def patchify(frames: np.ndarray, patch: int) -> np.ndarray:
    """[N, H, W] or [N, H, W, C] → [N, rows, cols, patch·patch·C], each patch flattened in raster order of
    its pixels with the channels innermost (as ViT/iGPT); grey frames give vectors of patch² pixels."""
    x = frames[..., None] if frames.ndim == 3 else frames
    n, h, w, c = x.shape
    rows, cols = h // patch, w // patch
    x = x.reshape(n, rows, patch, cols, patch, c)  # (N, rows, p, cols, p, C)
    x = x.transpose(0, 1, 3, 2, 4, 5)  # (N, rows, cols, p, p, C)
    return x.reshape(n, rows, cols, patch * patch * c)


def unpatchify(patches: np.ndarray, patch: int, channels: int = 1) -> np.ndarray:
    """[N, rows, cols, patch·patch·C] → [N, H, W] for channels=1, [N, H, W, C] otherwise: the inverse of
    `patchify`."""
    n, rows, cols, d = patches.shape
    if d != patch * patch * channels:
        raise TokenizerError(
            f"patch vectors of {d} values do not fit {patch}×{patch} patches of {describe_channels(channels)}"
        )
    x = patches.reshape(n, rows, cols, patch, patch, channels)  # (N, rows, cols, p, p, C)
    x = x.transpose(0, 1, 3, 2, 4, 5)  # (N, rows, p, cols, p, C)
    x = x.reshape(n, rows * patch, cols * patch, channels)
    return x[..., 0] if channels == 1 else x


def fit_channels(frames: Any, channels: int | None = None) -> int:
    """The channels of training frames: `channels` when given, else read from the array's shape as the
    module docstring says (3-D grey, 5-D last axis, 4-D last axis when at most 4, else grey clips)."""
    if channels is not None:
        return check_positive("channels", channels)
    shape = np.shape(frames)
    if len(shape) == 5 or (len(shape) == 4 and shape[-1] <= MAX_GUESSED_CHANNELS):
        return max(1, int(shape[-1]))
    return 1


def _frame_axes(shape: tuple[int, ...], image_size, channels: int):
    """(leading shape, (H, W), channels of the frames) read from an input shape, or None when no reading
    fits. A reading with the tokenizer's channels and size wins; then one with its size; then a guess: a
    last axis of at most max(channels, 4) is channels."""
    fits = (lambda hw: True) if image_size is None else (lambda hw: tuple(hw) == tuple(image_size))
    nd = len(shape)
    if nd == 3:
        if channels > 1 and shape[-1] == channels and fits(shape[:2]):
            return None  # one [H, W, C] image: a frame axis is missing
        return shape[:1], shape[1:], 1
    if nd == 4:
        last = (shape[:1], shape[1:3], shape[3])  # [F, H, W, C]
        grey = (shape[:2], shape[2:], 1)  # [B, F, H, W]
        for lead, hw, c in (last, grey):  # channels last first, as the module docstring says
            if c == channels and fits(hw):
                return lead, hw, c
        sized = [r for r in (last, grey) if image_size is not None and fits(r[1])]
        return sized[0] if sized else last if last[2] <= max(channels, MAX_GUESSED_CHANNELS) else grey
    if nd == 5:
        c = shape[-1]
        if c == channels or c <= MAX_GUESSED_CHANNELS or (image_size is not None and fits(shape[2:4])):
            return shape[:2], shape[2:4], c
    return None


def check_frames(
    frames: Any, image_size: tuple[int, int] | None = None, channels: int = 1
) -> tuple[np.ndarray, tuple[int, ...]]:
    """Validate frames float in [0, 1] of `channels` channels (shapes in the module docstring); return them
    as [N, H, W] (grey) or [N, H, W, C] float32 with the leading shape (F,) or (B, F).
    image_size=None accepts any H, W (fitting)."""
    if hasattr(frames, "detach"):  # a torch tensor: numpy view of its CPU copy, no torch import here
        frames = frames.detach().cpu().numpy()
    x = np.asarray(frames)
    axes = _frame_axes(tuple(x.shape), image_size, channels)
    if axes is None:
        c = "" if channels == 1 else f", {channels}"
        tail = "; a grey tokenizer also takes a trailing channel axis of 1" if channels == 1 else ""
        raise TokenizerError(
            f"frames must be [F, H, W{c}] or [B, F, H, W{c}], got shape {tuple(x.shape)}; "
            f"add a frame axis for a single image (x[None]){tail}"
        )
    if not np.issubdtype(x.dtype, np.floating):
        hint = "divide uint8 images by 255" if x.dtype == np.uint8 else "convert them to float in [0, 1]"
        raise TokenizerError(f"frames must be float in [0, 1], got dtype {x.dtype}; {hint}")
    lead, (h, w), c = axes
    if c != channels:
        want = describe_channels(channels).replace(" channels", "").replace(" channel", "")  # "3 (RGB)"
        fix = (
            "convert the frames to grey"
            if channels == 1
            else f"pass frames [F, H, W, {channels}] (channels last)"
        )
        raise TokenizerError(
            f"frames have {describe_channels(c)} but this tokenizer takes {want}; fit a tokenizer on "
            f"{CHANNEL_NAMES.get(c, f'{c}-channel')} frames (channels={c}) or {fix}"
        )
    if image_size is not None and (h, w) != tuple(image_size):
        eh, ew = image_size
        raise TokenizerError(
            f"frames are {h}×{w} pixels but this tokenizer takes {eh}×{ew}; "
            f"resize or pad them to {eh}×{ew}, or fit a tokenizer on {h}×{w} frames"
        )
    frame = (h, w) if c == 1 else (h, w, c)
    x = x.reshape(-1, *frame).astype(np.float32, copy=False)
    if x.size:
        lo, hi = float(x.min()), float(x.max())
        if not (lo >= -RANGE_TOLERANCE and hi <= 1 + RANGE_TOLERANCE):  # also catches NaN
            raise TokenizerError(
                f"frame values must lie in [0, 1], got min {lo:.4g} and max {hi:.4g}; "
                "rescale them (e.g. x / 255, or (x - x.min()) / (x.max() - x.min())) and drop NaN/inf"
            )
        if lo < 0 or hi > 1:
            x = np.clip(x, 0.0, 1.0)
    return x, tuple(int(n) for n in lead)


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
    if getattr(tok, "channels", None) is not None:
        check_positive(f"{origin}: channels", tok.channels)


class Tokenizer(ABC):
    """Base of every tokenizer: validation, [B, F] batching and the spec; subclasses map frames ↔ ids.

    `patch` is the side in pixels that one token covers (the downsampling factor of a dVAE/VQGAN), so
    the grid is (H / patch, W / patch). `channels` is the number of channels of a frame (1: grey).
    """

    kind: str = "abstract"  # the registry key that rebuilds it (registry.register_tokenizer)

    def __init__(
        self,
        *,
        patch: int,
        image_size: tuple[int, int],
        seed: int = 0,
        name: str | None = None,
        channels: int = 1,
    ):
        self.patch = check_positive("patch", patch)
        self.channels = check_positive("channels", channels)
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
        """[N, *frame_shape] float32 in [0, 1] ([N, H, W] grey, [N, H, W, C]) → [N, rows, cols] int64 in
        [0, vocab_size)."""

    @abstractmethod
    def _decode_frames(self, ids: np.ndarray) -> np.ndarray:
        """[N, rows, cols] int64, already range-checked → [N, *frame_shape] float32."""

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
    def frame_shape(self) -> tuple[int, ...]:
        """One frame as decode gives it and subclasses see it: (H, W) when grey, (H, W, C) otherwise."""
        return self.image_size if self.channels == 1 else (*self.image_size, self.channels)

    @property
    def spec(self) -> dict[str, Any]:
        spec = {
            "kind": self.kind,
            "name": self.name,
            "vocab_size": int(self.vocab_size),
            "patch": self.patch,
            "image_size": list(self.image_size),
            "channels": self.channels,
            "grid": list(self.grid),
            "seed": self.seed,
        }
        spec.update(self.hyperparameters())
        return spec

    def encode(self, frames: np.ndarray) -> np.ndarray:
        """frames [F, H, W(, C)] or [B, F, H, W(, C)] float in [0, 1] → ids int64 [F, rows, cols] /
        [B, F, rows, cols]; grey frames may omit the channel axis (see the module docstring)."""
        x, lead = check_frames(frames, self.image_size, self.channels)
        ids = np.asarray(self._encode_frames(x), dtype=np.int64)  # (N, rows, cols)
        return ids.reshape(*lead, *self.grid)

    def decode(self, ids: np.ndarray) -> np.ndarray:
        """ids [F, rows, cols] or [B, F, rows, cols] in [0, vocab_size) → frames float32 in [0, 1],
        [..., H, W] for a grey tokenizer and [..., H, W, C] otherwise."""
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
        frames = np.clip(np.asarray(frames, dtype=np.float32), 0.0, 1.0)  # (N, *frame_shape)
        if frames.size != int(np.prod(a.shape[:-2])) * int(np.prod(self.frame_shape)):
            raise TokenizerError(
                f"{type(self).__name__}._decode_frames gave shape {frames.shape} for {a.shape} ids; it must "
                f"give [N, {', '.join(map(str, self.frame_shape))}] (channels={self.channels})"
            )
        return frames.reshape(*lead, *self.frame_shape)

    def __repr__(self) -> str:
        size = "×".join(map(str, self.frame_shape))
        return (
            f"{type(self).__name__}(name={self.name!r}, vocab_size={self.vocab_size}, {size} → {self.grid})"
        )


class PatchTokenizer(Tokenizer):
    """A tokenizer that codes each patch on its own: subclasses map vectors [M, patch²·C] ↔ codes [M]."""

    @property
    def patch_dim(self) -> int:
        """Values in one patch vector: patch · patch · channels."""
        return self.patch * self.patch * self.channels

    @abstractmethod
    def _encode_patches(self, patches: np.ndarray) -> np.ndarray:
        """[M, patch²·C] float32 → [M] int64 codes."""

    @abstractmethod
    def _decode_patches(self, codes: np.ndarray) -> np.ndarray:
        """[M] int64 → [M, patch²·C] float32 pixel values."""

    def _encode_frames(self, frames: np.ndarray) -> np.ndarray:
        patches = patchify(frames, self.patch)  # (N, rows, cols, p²·C)
        flat = patches.reshape(-1, patches.shape[-1])  # (M, p²·C)
        codes = self._encode_patches(np.ascontiguousarray(flat))  # (M,)
        return codes.reshape(patches.shape[:3])  # (N, rows, cols)

    def _decode_frames(self, ids: np.ndarray) -> np.ndarray:
        patches = self._decode_patches(ids.reshape(-1))  # (N·rows·cols, p²·C)
        return unpatchify(patches.reshape(*ids.shape, -1), self.patch, self.channels)  # (N, *frame_shape)


def training_patches(
    frames: np.ndarray, patch: int, max_patches: int | None, seed: int, channels: int | None = None
) -> tuple[np.ndarray, np.ndarray, tuple[int, int], int]:
    """The distinct patches of the training frames with their counts, for fitting.

    Backgrounds make most patches identical (≈ 77% of the digit frames' patches are all zero), so
    fitting on distinct patches weighted by their counts gives the same objective as fitting on all of
    them at a fraction of the cost. Above max_patches, whole frames are subsampled (seeded) first.
    channels: of the frames, None to read it from their shape (`fit_channels`).
    Returns (unique [U, patch²·C] float32, counts [U] float64, image_size, channels).
    """
    channels = fit_channels(frames, channels)
    x, _ = check_frames(frames, None, channels)  # (N, H, W) or (N, H, W, C)
    if len(x) == 0:
        raise TokenizerError("no frames to fit on; pass at least one frame [F, H, W] or [F, H, W, C]")
    h, w = x.shape[1:3]
    if h % patch or w % patch:
        shape = np.shape(frames)
        hint = (
            f"; if they are [N, H, W, {shape[-1]}] frames of {shape[-1]} channels, pass channels={shape[-1]}"
            if channels == 1 and len(shape) == 4 and shape[-1] <= MAX_GUESSED_CHANNELS
            else ""
        )
        raise TokenizerError(
            f"frames are {h}×{w}, not a multiple of patch {patch}; pick a patch dividing both{hint}"
        )
    per_frame = (h // patch) * (w // patch)
    if max_patches is not None and len(x) * per_frame > max_patches:
        keep = max(1, check_positive("max_patches", max_patches) // per_frame)
        x = x[np.sort(np.random.default_rng(seed).choice(len(x), keep, replace=False))]
    d = patch * patch * channels
    patches = np.ascontiguousarray(patchify(x, patch).reshape(-1, d))  # (M, p²·C)
    # One opaque row per patch: np.unique sorts bytes instead of comparing floats column by column.
    rows = patches.view(np.dtype((np.void, patches.dtype.itemsize * patches.shape[1]))).ravel()
    _, first, counts = np.unique(rows, return_index=True, return_counts=True)
    return patches[first], counts.astype(np.float64), (h, w), channels
