"""Label propagation through a clip by feature affinity, scored with J&F (appendix Fig. 7, Table 14).

The first frame's object masks are given; every later frame's labels are a weighted vote of the labels of
a context of earlier frames, weighted by how alike the features of the tokens are (Jabri et al. 2020,
"STC", and DINO's video-segmentation evaluation), then upsampled to pixels and scored against the truth
with the DAVIS 2017 definitions (`toto_lens.analysis.davis`). Protocol: shared/PROTOCOLS.md.

For each target frame t (token grid R × C):

1. features of every token L2-normalised (a zero vector stays zero);
2. context = the first frame, with its true labels, plus the `context` frames before t, with their
   predicted soft labels; never a frame after t (the propagation reads nothing from the future);
3. affinity = cosine similarity of each target token to each context token; a token of a previous frame
   counts only within `radius` tokens (Chebyshev distance) of the target's place, the first frame at any
   place (as in STC and DINO);
4. the `topk` strongest sources over the whole context, weighted by softmax(similarity / `temperature`)
   (which is DINO's exp(similarity / τ) normalised over the top k);
5. the target's soft labels = the weighted sum of the sources' soft labels.

Labels on the token grid are area fractions: a token's label for object k is the share of its patch's
pixels that belong to k (background included, so they sum to 1). Soft labels are upsampled to pixels
bilinearly (half-pixel centres, edges clamped, as torch's `interpolate(..., align_corners=False)`), each
label's map rescaled to [0, 1] per frame (DINO's `norm_mask`), and each pixel takes the most likely label.

Two rows beside the layers put a number in context: `copy-first` (the first mask on every frame: what no
motion scores) and `token-oracle` (every frame's *true* labels on the token grid, upsampled the same way:
the most any propagation over tokens can score, the part of the mask lost to the grid). `pixels`, raw
pixel patches as features, is the no-learning tracker; its patches are centred by the first frame's mean
patch, since uncentred all-positive patches are all alike under cosine similarity.

The defaults adapt DINO's (top-k 5, 7 context frames, radius 12 patches on a ~60-patch-high grid,
τ = 0.1) to the bundled 8 × 8 token grid: the same top-k, context and temperature, and a radius of 2
tokens (a fifth of the grid, as 12 is of 60). They are stated in every result's attributes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import xarray as xr

from toto_lens.analysis import AnalysisError
from toto_lens.analysis.davis import BOUND_TH, score_objects, statistics, tolerance

COPY_FIRST = "copy-first"
ORACLE = "token-oracle"
PIXELS = "pixels"
BASELINES = (COPY_FIRST, ORACLE)


@dataclass(frozen=True)
class Propagation:
    """How labels propagate: sources kept per target, context frames, neighbourhood radius (tokens), τ."""

    topk: int = 5
    context: int = 7
    radius: int = 2
    temperature: float = 0.1

    def __post_init__(self) -> None:
        if self.topk < 1 or self.context < 0 or self.radius < 0 or not self.temperature > 0:
            raise AnalysisError(
                f"propagation needs topk ≥ 1, context ≥ 0, radius ≥ 0 and temperature > 0; got topk={self.topk}, "
                f"context={self.context}, radius={self.radius}, temperature={self.temperature}"
            )

    def to_attrs(self) -> dict[str, Any]:
        return {f"propagation_{k}": v for k, v in asdict(self).items()}


def token_labels(mask: np.ndarray, objects: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Soft labels (R, C, 1 + K) of a label mask (H, W): per token, the share of its patch's pixels that are
    background (column 0; pixels of objects not in `objects` count as background) or object objects[k−1]."""
    mask = np.asarray(mask)
    rows, cols = grid
    h, w = mask.shape
    if h % rows or w % cols:
        raise AnalysisError(f"masks of {h}×{w} pixels do not divide into a {rows}×{cols} token grid")
    onehot = np.stack([~np.isin(mask, objects)] + [mask == k for k in objects], axis=-1).astype(np.float64)
    return onehot.reshape(rows, h // rows, cols, w // cols, -1).mean(axis=(1, 3))


def neighbourhood(grid: tuple[int, int], radius: int) -> np.ndarray:
    """(R·C, R·C) bool: target token i may take a label from source token j of a previous frame."""
    rows, cols = np.divmod(np.arange(grid[0] * grid[1]), grid[1])
    return (np.abs(rows[:, None] - rows[None, :]) <= radius) & (
        np.abs(cols[:, None] - cols[None, :]) <= radius
    )


def normalise(features: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(features, axis=-1, keepdims=True)
    return features / np.where(norm > 0, norm, 1.0)


def propagate(features: np.ndarray, first: np.ndarray, settings: Propagation = Propagation()) -> np.ndarray:
    """Soft labels (..., F, R, C, L) of every frame from token features (..., F, R, C, D) and the first
    frame's soft labels (..., R, C, L); frame 0 keeps `first`. Leading dimensions are clips propagated
    together (each from its own frames only). Frame t's labels depend on features of frames ≤ t only."""
    feats = np.asarray(features, dtype=np.float32)  # similarities in float32: half the time of float64
    first = np.asarray(first, dtype=np.float64)
    *lead, n_frames, rows, cols, dim = feats.shape
    if first.shape[:-1] != (*lead, rows, cols):
        raise AnalysisError(
            f"first-frame labels {first.shape[:-1]} do not match the features' {(*lead, rows, cols)}"
        )
    batch, tokens, n_labels = int(np.prod(lead, dtype=np.int64)), rows * cols, first.shape[-1]
    feats = normalise(feats.reshape(batch, n_frames, tokens, dim))
    near = neighbourhood((rows, cols), settings.radius)
    labels = np.zeros((batch, n_frames, tokens, n_labels))
    labels[:, 0] = first.reshape(batch, tokens, n_labels)
    for t in range(1, n_frames):
        ctx = [0, *range(max(1, t - settings.context), t)]
        n_src = len(ctx) * tokens
        sim = np.matmul(feats[:, t], feats[:, ctx].reshape(batch, n_src, dim).transpose(0, 2, 1))  # (b, i, j)
        allowed = np.ones((tokens, len(ctx), tokens), dtype=bool)
        allowed[:, 1:] = near[:, None, :]  # the first frame: any place; previous frames: within the radius
        sim = np.where(allowed.reshape(tokens, n_src), sim, -np.inf)
        k = min(settings.topk, n_src)
        top = np.argpartition(-sim, k - 1, axis=-1)[..., :k]  # (b, target, k)
        weights = np.take_along_axis(sim, top, axis=-1) / settings.temperature
        weights = np.exp(weights - weights.max(axis=-1, keepdims=True))
        weights /= weights.sum(axis=-1, keepdims=True)
        sources = labels[:, ctx].reshape(batch * n_src, n_labels)
        picked = sources[top + (np.arange(batch) * n_src)[:, None, None]]  # (b, target, k, L)
        labels[:, t] = (weights[..., None] * picked).sum(axis=2)
    return labels.reshape(*lead, n_frames, rows, cols, n_labels)


def _interpolation(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) weights of 1-d linear interpolation with half-pixel centres, edges clamped."""
    src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = src - lo
    m = np.zeros((n_out, n_in))
    np.add.at(m, (np.arange(n_out), lo), 1 - frac)
    np.add.at(m, (np.arange(n_out), hi), frac)
    return m


def to_pixels(
    soft: np.ndarray, image: tuple[int, int], objects: np.ndarray, rescale: bool = True
) -> np.ndarray:
    """Label masks (F, H, W) (0 = background, else the object's id) from soft labels (F, R, C, 1 + K):
    upsampled bilinearly, each label's map rescaled to [0, 1] per frame (`rescale`, as DINO's evaluation
    does: an object only ever partly covering its tokens, such as a thin digit, is not lost to the
    background), then the most likely label per pixel."""
    wy, wx = _interpolation(image[0], soft.shape[1]), _interpolation(image[1], soft.shape[2])
    up = np.matmul(wx, np.matmul(wy, soft.transpose(0, 3, 1, 2)).transpose(0, 1, 3, 2))  # (F, L, W, H)
    up = up.transpose(0, 3, 2, 1)
    if rescale:
        low, high = up.min(axis=(1, 2), keepdims=True), up.max(axis=(1, 2), keepdims=True)
        span = high - low
        up = np.where(high > 0, (up - low) / np.where(span > 0, span, 1.0), up)
    ids = np.concatenate([[0], np.asarray(objects)]).astype(np.uint8)
    return ids[up.argmax(axis=-1)]


def pixel_features(frames: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Raw pixels as token features, (F, H, W[, C]) → (F, R, C, patch pixels), centred by the first
    frame's mean patch (the given frame: nothing later is read)."""
    frames = np.asarray(frames, dtype=np.float64)
    if frames.ndim == 3:
        frames = frames[..., None]
    n, h, w, ch = frames.shape
    rows, cols = grid
    x = frames.reshape(n, rows, h // rows, cols, w // cols, ch).transpose(0, 1, 3, 2, 4, 5)
    x = x.reshape(n, rows, cols, -1)
    return x - x[0].mean(axis=(0, 1))


def first_objects(masks: np.ndarray) -> np.ndarray:
    """The objects a clip is tracked for: those present in its first frame."""
    ids = np.unique(np.asarray(masks)[0])
    return ids[ids > 0]


def track_clip(
    features: np.ndarray | str,
    masks: np.ndarray,
    settings: Propagation = Propagation(),
    *,
    grid: tuple[int, int] | None = None,
    rescale: bool = True,
) -> np.ndarray:
    """Predicted label masks (F, H, W) of one clip with true masks (F, H, W): propagated by `features`
    (F, R, C, D), or for a baseline named instead of features: `copy-first` (the first frame's mask on every
    frame) or `token-oracle` (each frame's true token labels on `grid`, upsampled: the grid's ceiling)."""
    masks = np.asarray(masks)
    if isinstance(features, str) and features == COPY_FIRST:
        return np.repeat(masks[:1], len(masks), axis=0)
    objects = first_objects(masks)
    if isinstance(features, str):
        if features != ORACLE or grid is None:
            raise AnalysisError(
                f"baseline {features!r}: choose {COPY_FIRST}, or {ORACLE} with its token grid"
            )
        soft = np.stack([token_labels(m, objects, grid) for m in masks])
    else:
        soft = propagate(features, token_labels(masks[0], objects, features.shape[1:3]), settings)
    return to_pixels(soft, masks.shape[1:], objects, rescale)


CLIPS_AT_ONCE = 16  # clips propagated together: fewer, larger array operations; memory stays bounded


def propagate_clips(
    features: np.ndarray, masks: np.ndarray, settings: Propagation = Propagation()
) -> np.ndarray:
    """Soft labels (clip, F, R, C, 1 + K) of many clips, features (clip, F, R, C, D) and true masks
    (clip, F, H, W), propagated a batch of clips at a time; K is the most objects a clip has, and a clip
    with fewer has zero labels in the extra columns (which stay zero)."""
    grid = features.shape[2:4]
    objects = [first_objects(m) for m in masks]
    firsts = np.zeros((len(masks), *grid, 1 + max(len(o) for o in objects)))
    for c, (m, o) in enumerate(zip(masks, objects, strict=True)):
        firsts[c, ..., : 1 + len(o)] = token_labels(m[0], o, grid)
    return np.concatenate([
        propagate(features[i : i + CLIPS_AT_ONCE], firsts[i : i + CLIPS_AT_ONCE], settings)
        for i in range(0, len(masks), CLIPS_AT_ONCE)
    ])  # fmt: skip


def score_clip(pred: np.ndarray, true: np.ndarray, bound_th: float = BOUND_TH) -> dict[str, np.ndarray]:
    """Per object of the first frame: J and F per scored frame, and each one's Mean, Recall and Decay."""
    objects = first_objects(true)
    j, f = score_objects(pred, true, objects, bound_th)
    out: dict[str, np.ndarray] = {"objects": objects, "J_frame": j, "F_frame": f}
    for name, values in (("J", j), ("F", f)):
        stats = np.array([statistics(v) for v in values]).reshape(-1, 3)
        out[name], out[f"{name}_recall"], out[f"{name}_decay"] = stats.T
    return out


STATS = ("J", "F", "J_recall", "J_decay", "F_recall", "F_decay")


def track(
    predictors: Mapping[str, Callable[[], np.ndarray]],
    masks: np.ndarray,
    clip_ids: np.ndarray,
    grid: tuple[int, int],
    settings: Propagation = Propagation(),
    *,
    show: int = 4,
    frames: np.ndarray | None = None,
    bound_th: float = BOUND_TH,
    rescale: bool = True,
    progress: Callable[[str], None] | None = None,
) -> xr.Dataset:
    """J&F of every predictor of the masks on the same clips, the baselines copy-first and token-oracle
    after them.

    predictors: name (`layer-N`, `pixels`) → a function giving the token features of every clip
    (clip, F, R, C, D) on the token `grid`, called once when that predictor's turn comes (so only one layer
    is in memory at a time). masks: (clip, F, H, W) true label masks. The result has, along `predictor`
    (not `method`, which `xarray.Dataset.sel` takes as its own keyword): J, F (Means over clips and objects),
    JF = (J + F) / 2, the Recalls and Decays, and J_frame / F_frame per frame (NaN on the first and last,
    not scored); per (predictor, clip, object): J_object and F_object; and for the first `show` clips the
    predicted masks (`pred_masks`) beside the truth (`true_masks`, and `frames` if given).
    """
    masks = np.asarray(masks)
    n_clips, n_frames = masks.shape[:2]
    scored = np.arange(n_frames)[1 : n_frames - 1]
    if scored.size == 0:
        raise AnalysisError(
            f"clips of {n_frames} frames have no frame to score (the first and last are left out)"
        )
    n_obj = max(len(first_objects(m)) for m in masks)
    if n_obj == 0:
        raise AnalysisError("no clip has an object in its first frame: nothing to track")
    names, show = [*predictors, *BASELINES], min(show, n_clips)
    per_object = {s: np.full((len(names), n_clips, n_obj), np.nan) for s in STATS}
    per_frame = {s: np.full((len(names), n_clips, n_obj, scored.size), np.nan) for s in ("J", "F")}
    shown = np.zeros((len(names), show, *masks.shape[1:]), dtype=np.uint8)
    for m, name in enumerate(names):
        feats = predictors[name]() if name in predictors else name
        if not isinstance(feats, str) and (len(feats) != n_clips or feats.shape[2:4] != tuple(grid)):
            raise AnalysisError(
                f"predictor {name}: features {feats.shape[:4]} do not match {n_clips} clips of {grid} tokens"
            )
        propagated = None if isinstance(feats, str) else propagate_clips(feats, masks, settings)
        for c in range(n_clips):
            if propagated is None:
                pred = track_clip(feats, masks[c], settings, grid=grid, rescale=rescale)
            else:
                objects = first_objects(masks[c])
                pred = to_pixels(propagated[c][..., : 1 + len(objects)], masks.shape[2:], objects, rescale)
            s = score_clip(pred, masks[c], bound_th)
            k = len(s["objects"])
            for stat in STATS:
                per_object[stat][m, c, :k] = s[stat]
            per_frame["J"][m, c, :k], per_frame["F"][m, c, :k] = s["J_frame"], s["F_frame"]
            if c < show:
                shown[m, c] = pred
        if progress is not None:
            progress(name)
    ds = _result(names, per_object, per_frame, shown, masks, clip_ids, scored, settings, frames, bound_th)
    ds.attrs["rescale"] = "per label and frame to [0, 1] before the argmax (DINO)" if rescale else "none"
    return ds


def _result(names, per_object, per_frame, shown, masks, clip_ids, scored, settings, frames, bound_th):
    n_show = shown.shape[1]
    layer = [int(n.split("-", 1)[1]) if n.startswith("layer-") else -1 for n in names]
    data: dict[str, Any] = {}
    for stat, values in per_object.items():
        data[stat] = ("predictor", np.nanmean(values, axis=(1, 2)))
        if stat in ("J", "F"):
            data[f"{stat}_object"] = (("predictor", "clip", "object"), values)
    data["JF"] = ("predictor", (data["J"][1] + data["F"][1]) / 2)
    for stat in ("J", "F"):  # NaN on the frames not scored (the first and the last)
        by_frame = np.full((len(names), masks.shape[1]), np.nan)
        with np.errstate(invalid="ignore"):
            by_frame[:, scored] = np.nanmean(per_frame[stat], axis=(1, 2))
        data[f"{stat}_frame"] = (("predictor", "frame"), by_frame)
    data["pred_masks"] = (("predictor", "shown", "frame", "y", "x"), shown)
    data["true_masks"] = (("shown", "frame", "y", "x"), masks[:n_show].astype(np.uint8))
    if frames is not None:
        pixels = np.asarray(frames[:n_show], dtype=np.float32)
        data["frames"] = (("shown", "frame", "y", "x", "channel")[: pixels.ndim], pixels)
    n_objects = int(np.isfinite(per_object["J"][0]).sum())
    ds = xr.Dataset(
        data,
        coords={
            "predictor": names,
            "predictor_layer": ("predictor", np.array(layer, dtype=np.int64)),
            "clip": np.asarray(clip_ids),
            "object": np.arange(1, per_object["J"].shape[2] + 1),
            "frame": np.arange(masks.shape[1]),
            "shown": np.asarray(clip_ids)[:n_show],
        },
    )
    ds.attrs.update({
        **settings.to_attrs(),
        "objects": n_objects,
        "boundary_tolerance_px": tolerance(masks.shape[2:], bound_th),
        "bound_th": bound_th,
        "scored_frames": "all but the first (given) and the last",
        "labels": "token labels are the share of each patch's pixels per object; bilinear upsampling, argmax",
    })  # fmt: skip
    ds["J"].attrs["long_name"] = "region similarity (IoU), mean over objects of their mean over frames"
    ds["F"].attrs["long_name"] = "boundary F-measure, mean over objects of their mean over frames"
    ds["JF"].attrs["long_name"] = "J&F-Mean, (J + F) / 2"
    return ds


def best_layer(result: xr.Dataset) -> str | None:
    """The predictor `layer-N` with the highest J&F (None when the result has no layer)."""
    layers = [m for m in result["predictor"].values if str(m).startswith("layer-")]
    if not layers:
        return None
    return str(result["JF"].sel(predictor=layers).idxmax("predictor").item())
