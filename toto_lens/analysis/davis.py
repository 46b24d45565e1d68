"""The DAVIS 2017 scores of video object segmentation: region similarity J and boundary accuracy F.

Definitions as in the DAVIS 2017 evaluation (Pont-Tuset et al. 2017, semi-supervised task), written here
for numpy arrays:

- J: the intersection over union of a predicted and a true binary mask; 1 when both are empty.
- F: the boundary F-measure. Each mask's boundary is a one-pixel map (a pixel whose right, lower or
  lower-right neighbour differs, the map shifted half a pixel towards the origin); a predicted boundary
  pixel counts as matched when a true boundary pixel lies within `ceil(bound_th × image diagonal)` pixels
  (dilation by a disk of that radius), and the other way round for recall. F = 2PR / (P + R); with no
  predicted and no true boundary P = R = 1; with only one of them, the other side is 0 (F = 0).
- Per object, over the frames scored (the first frame, which is given, and the last frame are left out,
  as the reference code does): Mean, Recall (the share of frames scoring above 0.5) and Decay (the mean
  of the first quarter of the frames minus that of the last quarter, in four overlapping bins).
"""

from __future__ import annotations

import math

import numpy as np

BOUND_TH = 0.008  # boundary tolerance as a fraction of the image diagonal
RECALL_THRESHOLD = 0.5
DECAY_BINS = 4


def jaccard(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Region similarity of binary masks (..., H, W) → (...): |pred ∩ true| / |pred ∪ true|, 1 if both empty."""
    pred, true = np.asarray(pred, dtype=bool), np.asarray(true, dtype=bool)
    if pred.shape != true.shape:
        raise ValueError(f"masks differ in shape: predicted {pred.shape}, true {true.shape}")
    inter = (pred & true).sum(axis=(-2, -1))
    union = (pred | true).sum(axis=(-2, -1))
    return np.where(union == 0, 1.0, inter / np.maximum(union, 1))


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """One-pixel boundary of binary masks (..., H, W): pixels whose east, south or south-east neighbour
    differs; on the last row only the east neighbour counts, on the last column only the south one, and
    the bottom-right pixel is never a boundary."""
    seg = np.asarray(mask, dtype=bool)
    east, south, southeast = np.zeros_like(seg), np.zeros_like(seg), np.zeros_like(seg)
    east[..., :, :-1] = seg[..., :, 1:]
    south[..., :-1, :] = seg[..., 1:, :]
    southeast[..., :-1, :-1] = seg[..., 1:, 1:]
    edge = (seg ^ east) | (seg ^ south) | (seg ^ southeast)
    edge[..., -1, :] = seg[..., -1, :] ^ east[..., -1, :]
    edge[..., :, -1] = seg[..., :, -1] ^ south[..., :, -1]
    edge[..., -1, -1] = False
    return edge


def tolerance(shape: tuple[int, int], bound_th: float = BOUND_TH) -> int:
    """Boundary tolerance in pixels: `bound_th` itself when ≥ 1, else ceil(bound_th × diagonal)."""
    return int(bound_th) if bound_th >= 1 else math.ceil(bound_th * math.hypot(*shape))


def disk(radius: int) -> np.ndarray:
    """Structuring element: the pixels within `radius` of the centre (x² + y² ≤ r²)."""
    r = np.arange(-radius, radius + 1)
    return r[:, None] ** 2 + r[None, :] ** 2 <= radius**2


def f_measure(pred: np.ndarray, true: np.ndarray, bound_th: float = BOUND_TH) -> np.ndarray:
    """Boundary F-measure of predicted and true binary masks (..., H, W) → (...), one per mask pair."""
    from scipy.ndimage import binary_dilation

    pred, true = np.asarray(pred, dtype=bool), np.asarray(true, dtype=bool)
    if pred.shape != true.shape or pred.ndim < 2:
        raise ValueError(f"f_measure takes masks of one shape (..., H, W), got {pred.shape} and {true.shape}")
    lead, image = pred.shape[:-2], pred.shape[-2:]
    pb, tb = boundary_map(pred).reshape(-1, *image), boundary_map(true).reshape(-1, *image)
    footprint = disk(tolerance(image, bound_th))[None]  # dilate each mask on its own, not across them
    matched_pred = (pb & binary_dilation(tb, footprint)).sum(axis=(1, 2))
    matched_true = (tb & binary_dilation(pb, footprint)).sum(axis=(1, 2))
    n_pred, n_true = pb.sum(axis=(1, 2)), tb.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        # no predicted boundary: precision 1 (nothing wrong was drawn); no true boundary: recall 1
        precision = np.where(n_pred == 0, 1.0, matched_pred / np.maximum(n_pred, 1))
        recall = np.where(n_true == 0, 1.0, matched_true / np.maximum(n_true, 1))
        # … but one side empty and the other not scores 0 on the empty side's partner
        precision = np.where((n_pred > 0) & (n_true == 0), 0.0, precision)
        recall = np.where((n_true > 0) & (n_pred == 0), 0.0, recall)
        f = np.where(precision + recall == 0, 0.0, 2 * precision * recall / (precision + recall))
    return f.reshape(lead) if lead else f.reshape(()).item()


def statistics(per_frame: np.ndarray) -> tuple[float, float, float]:
    """(Mean, Recall, Decay) of one object's per-frame scores."""
    values = np.asarray(per_frame, dtype=np.float64)
    if values.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(np.nanmean(values))
    recall = float(np.mean(values[~np.isnan(values)] > RECALL_THRESHOLD))
    ids = (np.round(np.linspace(1, len(values), DECAY_BINS + 1) + 1e-10) - 1).astype(int)
    bins = [values[ids[i] : ids[i + 1] + 1] for i in range(DECAY_BINS)]
    decay = float(np.nanmean(bins[0]) - np.nanmean(bins[-1]))
    return mean, recall, decay


def scored_frames(n_frames: int) -> slice:
    """The frames a clip is scored on: all but the first (given) and the last."""
    if n_frames < 3:
        raise ValueError(
            f"a clip of {n_frames} frames has no frame to score (the first and last are left out)"
        )
    return slice(1, n_frames - 1)


def score_objects(
    pred: np.ndarray, true: np.ndarray, objects: np.ndarray, bound_th: float = BOUND_TH
) -> tuple[np.ndarray, np.ndarray]:
    """Per-object, per-frame J and F of label masks (F, H, W) (0 = background, k = object k), over the
    scored frames: two (objects, scored frames) arrays."""
    pred, true = np.asarray(pred), np.asarray(true)
    frames = scored_frames(true.shape[0])
    p, t = pred[frames], true[frames]
    ids = np.asarray(objects).reshape(-1, 1, 1, 1)
    p_obj, t_obj = p[None] == ids, t[None] == ids  # (objects, frames, H, W)
    return jaccard(p_obj, t_obj).reshape(len(ids), len(t)), np.asarray(
        f_measure(p_obj, t_obj, bound_th)
    ).reshape(len(ids), len(t))
