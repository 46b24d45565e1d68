"""Moving digits: labelled videos made from real handwritten digits (Moving MNIST conventions).

Digits are upscaled and placed on a larger black canvas, move with per-clip parameters, bounce at
the walls, and several digits composite by pixelwise max (Srivastava et al. 2015). Unlike Moving MNIST
each clip also draws a motion class, independent of the digit, so one clip serves classification
(`digit`), action recognition (`motion`), tracking (per-frame masks) and regression (per-frame position
and velocity). `ImageSequences` gives the paper's other input kind: clips of independent images.

Everything is a pure function of (seed, split, clip index): clip i is the same whether it is generated
alone, in order, or read back from a materialised store.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from toto_lens.data.clip import Clip, check_index
from toto_lens.data.digits import SPLITS, check_split, load_split
from toto_lens.data.labels import KIND_LABEL, LabelSpec, kind_code
from toto_lens.data.render import MASK_THRESHOLD, composite, draw_digit, texture
from toto_lens.errors import ConfigError

MOTIONS = ("static", "translate", "bounce", "rotate_cw", "rotate_ccw", "zoom_in", "zoom_out", "oscillate")
SOURCE_PIXELS = 8  # sklearn digits are 8×8
DIGITS = tuple(str(d) for d in range(10))
# The labels of both bundled sources, for classification (digit, frame_digit), action recognition
# (motion: -1 on image sequences) and regression (object centre and velocity, NaN velocity on images).
DIGIT_LABELS = (
    KIND_LABEL,
    LabelSpec("digit", (), "int64", DIGITS, "class of object 1 (the first image of a sequence)"),
    LabelSpec("motion", (), "int64", MOTIONS, "motion class of a video; -1 for image sequences"),
    LabelSpec("frame_digit", ("frame",), "int64", DIGITS, "class of each frame's main digit"),
    LabelSpec("object_digit", ("object",), "int64", DIGITS, "class of each object"),
    LabelSpec(
        "object_position", ("frame", "object", "axis"), "float32", (), "object centre (row, col), pixels"
    ),
    LabelSpec("object_velocity", ("frame", "object", "axis"), "float32", (), "object velocity, pixels/frame"),
)


def digit_labels(clip: Clip) -> dict[str, np.ndarray]:
    """The `DIGIT_LABELS` arrays of one bundled clip."""
    frames, video = clip.num_frames, clip.kind == "video"
    return {
        "kind": np.int8(kind_code(clip.kind)),
        "digit": np.int64(clip.digit),
        "motion": np.int64(clip.motion),
        "frame_digit": np.full(frames, clip.digits[0]) if video else np.asarray(clip.digits),
        "object_digit": np.asarray(clip.digits) if video else np.asarray(clip.digits[:1]),
        "object_position": np.asarray(clip.centre, dtype=np.float32),
        "object_velocity": np.asarray(clip.velocity, dtype=np.float32),
    }


@dataclass(frozen=True)
class MovingDigitsConfig:
    frames: int = 16
    canvas: int = 32  # pixels; a 4-pixel patch tokenizer gives an 8×8 grid per frame
    scale: float = 2.0  # canvas pixels per source pixel: 8×8 digits drawn 16×16
    n_digits: int = 2
    motions: tuple[str, ...] = MOTIONS
    translate_speed: tuple[float, float] = (0.4, 1.0)  # pixels/frame, never reaching a wall
    bounce_speed: tuple[float, float] = (2.0, 3.0)  # fast enough to reach a wall within the clip
    spin: tuple[float, float] = (10.0, 20.0)  # degrees/frame
    zoom: tuple[float, float] = (0.6, 1.4)  # scale factors at the ends of a zoom
    oscillation: tuple[float, float] = (3.0, 6.0)  # amplitude in pixels
    period: tuple[float, float] = (4.0, 8.0)  # frames
    background: float = 0.2  # brightness of the clip's static texture; 0 = black (classic Moving MNIST)

    def __post_init__(self) -> None:
        check_background(self.background)
        if self.frames < 2 or self.canvas < 8 or self.n_digits < 1 or self.scale <= 0:
            raise ConfigError("moving digits: need frames ≥ 2, canvas ≥ 8, n_digits ≥ 1, scale > 0")
        unknown = [m for m in self.motions if m not in MOTIONS]
        if unknown or not self.motions:
            raise ConfigError(f"moving digits: unknown motion(s) {unknown}; choose from {', '.join(MOTIONS)}")
        if self.canvas < SOURCE_PIXELS * self.scale * self.zoom[1] * np.sqrt(2):
            raise ConfigError(
                f"moving digits: canvas {self.canvas} is too small for digits at scale {self.scale}"
            )


def check_background(value: float) -> None:
    if not 0.0 <= value < MASK_THRESHOLD:
        raise ConfigError(
            f"background brightness must lie in [0, {MASK_THRESHOLD}) so masks stay the digits, got {value}"
        )


def clip_rng(seed: int, split: str, index: int, stream: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, SPLITS.index(split), index, stream])


def _reflect(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Position after bouncing between lo and hi: a triangle wave of the unbounded position."""
    span = hi - lo
    y = np.mod(x - lo, 2 * span)
    return lo + span - np.abs(y - span)


def _trajectory(motion: str, cfg: MovingDigitsConfig, rng: np.random.Generator) -> dict[str, Any]:
    """Centre (F, 2), scale (F,) and angle (F,) of one digit, plus the parameters drawn."""
    t = np.arange(cfg.frames, dtype=np.float64)
    scale = np.full(cfg.frames, cfg.scale)
    angle = np.zeros(cfg.frames)
    half = SOURCE_PIXELS * cfg.scale / 2
    lo, hi = half, cfg.canvas - half  # the digit's box stays on the canvas
    params: dict[str, Any] = {"motion": motion}

    def place(margin: float) -> np.ndarray:
        return rng.uniform(lo + margin, hi - margin, size=2)

    if motion in ("static", "rotate_cw", "rotate_ccw", "zoom_in", "zoom_out"):
        # A rotated or zoomed box needs more room: keep its largest extent on the canvas.
        grow = cfg.zoom[1] if motion.startswith("zoom") else 1.0
        turn = np.sqrt(2) if motion.startswith("rotate") else 1.0
        start = place(half * (grow * turn - 1))
        centre = np.repeat(start[None], cfg.frames, axis=0)
        if motion.startswith("rotate"):
            speed = np.deg2rad(rng.uniform(*cfg.spin)) * (-1 if motion == "rotate_cw" else 1)
            phase = rng.uniform(0, 2 * np.pi)
            angle = phase + speed * t
            params.update(angular_speed_deg=float(np.rad2deg(speed)), phase=float(phase))
        elif motion.startswith("zoom"):
            a, b = cfg.zoom if motion == "zoom_in" else cfg.zoom[::-1]
            scale = cfg.scale * (a + (b - a) * t / (cfg.frames - 1))
            params.update(zoom_from=a, zoom_to=b)
    elif motion in ("translate", "bounce"):
        speed = rng.uniform(*(cfg.translate_speed if motion == "translate" else cfg.bounce_speed))
        theta = rng.uniform(0, 2 * np.pi)
        velocity = speed * np.array([np.sin(theta), np.cos(theta)])
        if motion == "translate":
            travel = velocity * (cfg.frames - 1)
            start = rng.uniform(lo - np.minimum(travel, 0), hi - np.maximum(travel, 0))
            centre = start[None] + t[:, None] * velocity[None]
        else:
            start = place(0.0)
            centre = _reflect(start[None] + t[:, None] * velocity[None], lo, hi)
        params.update(speed=float(speed), direction_deg=float(np.rad2deg(theta)))
    elif motion == "oscillate":
        amplitude, period = rng.uniform(*cfg.oscillation), rng.uniform(*cfg.period)
        theta = rng.uniform(0, 2 * np.pi)
        direction = np.array([np.sin(theta), np.cos(theta)])
        start = place(amplitude)
        centre = start[None] + amplitude * np.sin(2 * np.pi * t / period)[:, None] * direction[None]
        params.update(
            amplitude=float(amplitude), period=float(period), direction_deg=float(np.rad2deg(theta))
        )
    else:  # guarded by the config; kept so a new motion name cannot fall through silently
        raise ConfigError(f"unknown motion {motion!r}")
    params["start"] = [float(v) for v in start]
    return {"centre": centre, "scale": scale, "angle": angle, "params": params}


def _velocity(position: np.ndarray) -> np.ndarray:
    v = np.diff(position, axis=0)
    return np.concatenate([v, v[-1:]], axis=0).astype(np.float32)


class _DigitSource:
    """What both bundled sources share: a split of the digit images, a seed, a clip count, a config."""

    name = ""
    kind = ""
    config_class: type = object
    label_spec = DIGIT_LABELS

    def __init__(self, split: str = "train", n_clips: int = 1024, seed: int = 0, config=None) -> None:
        check_split(split)
        if n_clips <= 0:
            raise ConfigError(f"n_clips must be positive, got {n_clips}")
        self.split, self.n_clips, self.seed = split, n_clips, seed
        self.config = config or self.config_class()
        self._images, self._labels, self._ids = load_split(split)

    @property
    def spec(self) -> dict[str, Any]:
        head = {"name": self.name, "kind": self.kind, "split": self.split, "n_clips": self.n_clips}
        return {**head, "seed": self.seed, **asdict(self.config)}

    def __len__(self) -> int:
        return self.n_clips


class MovingDigits(_DigitSource):
    """Videos of moving digits; clip i of (seed, split) is generated on demand, always the same."""

    name = "moving-digits"
    kind = "video"
    config_class = MovingDigitsConfig
    config: MovingDigitsConfig

    def __getitem__(self, index: int) -> Clip:
        i = check_index(index, self.n_clips, self.name)
        cfg = self.config
        rng = clip_rng(self.seed, self.split, i)
        motion_id = int(rng.integers(len(cfg.motions)))
        motion = cfg.motions[motion_id]
        picks = rng.integers(len(self._labels), size=cfg.n_digits)
        paths = [_trajectory(motion, cfg, rng) for _ in range(cfg.n_digits)]
        background = texture(cfg.canvas, cfg.background, clip_rng(self.seed, self.split, i, stream=2))
        layers = [  # each object's every frame at once: (F, canvas, canvas)
            draw_digit(self._images[p], cfg.canvas, tr["centre"], tr["scale"], tr["angle"])
            for p, tr in zip(picks, paths, strict=True)
        ]
        frames, masks = composite(layers, background)
        centre = np.stack([tr["centre"] for tr in paths], axis=1).astype(np.float32)  # (F, K, 2)
        digits = self._labels[picks]
        return with_labels(
            Clip(
                frames=frames,
                masks=masks,
                kind="video",
                digit=int(digits[0]),
                motion=MOTIONS.index(motion),
                digits=digits.copy(),
                centre=centre,
                velocity=_velocity(centre),
                split=self.split,
                index=i,
                params={
                    "seed": self.seed,
                    "source": self.name,
                    "motion": motion,
                    "digit_image_ids": [int(self._ids[p]) for p in picks],
                    "objects": [tr["params"] for tr in paths],
                },
            )
        )


@dataclass(frozen=True)
class ImageSequenceConfig:
    frames: int = 16
    canvas: int = 32
    scale: tuple[float, float] = (1.6, 2.4)
    jitter: float = 3.0  # pixels around the canvas centre
    background: float = 0.2  # brightness of each image's own texture (independent images, like photos)

    def __post_init__(self) -> None:
        check_background(self.background)


class ImageSequences(_DigitSource):
    """Clips of independent digit images (the paper's image sequences, started by token [3])."""

    name = "image-digits"
    kind = "images"
    config_class = ImageSequenceConfig
    config: ImageSequenceConfig

    def __getitem__(self, index: int) -> Clip:
        i = check_index(index, self.n_clips, self.name)
        cfg = self.config
        rng = clip_rng(self.seed, self.split, i, stream=1)
        picks = rng.integers(len(self._labels), size=cfg.frames)
        scales = rng.uniform(*cfg.scale, size=cfg.frames)
        centres = cfg.canvas / 2 + rng.uniform(-cfg.jitter, cfg.jitter, size=(cfg.frames, 2))
        backgrounds = np.stack([texture(cfg.canvas, cfg.background, rng) for _ in range(cfg.frames)])
        frames, masks = composite(
            [draw_digit(self._images[picks], cfg.canvas, centres, scales, 0.0)], backgrounds
        )
        digits = self._labels[picks]
        return with_labels(
            Clip(
                frames=frames,
                masks=masks,
                kind="images",
                digit=int(digits[0]),
                motion=-1,
                digits=digits.copy(),
                centre=centres[:, None, :].astype(np.float32),
                velocity=np.full((cfg.frames, 1, 2), np.nan, dtype=np.float32),
                split=self.split,
                index=i,
                params={
                    "seed": self.seed,
                    "source": self.name,
                    "digit_image_ids": [int(self._ids[p]) for p in picks],
                    "scales": [float(s) for s in scales],
                },
            )
        )


def with_labels(clip: Clip) -> Clip:
    clip.labels = digit_labels(clip)
    return clip
