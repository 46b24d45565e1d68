"""Head ablation: per-frame loss with chosen heads silenced, beside the same number of random heads.

Pure functions of per-token losses. A clip's token at position p is predicted at position p − 1, so the
per-token losses (…, position − 1) line up with `pos_frame[1:]`: the frame of the token each loss is
about (-1: the end token, left out). The first frame is predicted with no earlier frame to look at; the
later frames' advantage is first-frame loss / later-frames loss. An ablation that removes what makes
later frames cheap raises the later-frames loss (Δ > 0) and shrinks the advantage; the random heads, as
many as the chosen ones, several draws, say how much silencing any heads of that number costs.

Layer numbering is the induction result's: the attention of block i (0-based) is layer i + 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from toto_lens.analysis import AnalysisError


def frame_loss(losses: Any, pos_frame: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean loss per frame of per-token losses (…, clip, position − 1), over clips and the frame's tokens.

    pos_frame: (position,) each position's frame (-1: no frame). Returns (frames, loss (…, frame)).
    """
    losses = np.asarray(losses, dtype=np.float64)
    frames_of = np.asarray(pos_frame, dtype=np.int64)[1:]
    if losses.ndim < 2 or losses.shape[-1] != frames_of.shape[0]:
        raise AnalysisError(
            f"expected per-token losses (…, clip, {frames_of.shape[0]}) for {frames_of.shape[0] + 1} "
            f"positions, got {losses.shape}"
        )
    frames = np.unique(frames_of[frames_of >= 0])
    if frames.size == 0:
        raise AnalysisError("pos_frame marks no position as a frame's token")
    out = np.stack([losses[..., frames_of == f].mean(axis=(-2, -1)) for f in frames], axis=-1)
    return frames, out


def later_loss(per_frame: Any) -> np.ndarray:
    """Mean loss of the frames after the first (…, frame) → (…); NaN with one frame."""
    per_frame = np.asarray(per_frame, dtype=np.float64)
    if per_frame.shape[-1] < 2:
        return np.full(per_frame.shape[:-1], np.nan)
    return per_frame[..., 1:].mean(-1)


def advantage(per_frame: Any) -> np.ndarray:
    """The later frames' advantage: first-frame loss / later-frames loss (…, frame) → (…)."""
    per_frame = np.asarray(per_frame, dtype=np.float64)
    return per_frame[..., 0] / later_loss(per_frame)


def ablation_result(
    intact: Any,
    ablated: Any,
    random: Any,
    pos_frame: Any,
    heads: list[tuple[int, int]],
    random_heads: list[list[tuple[int, int]]],
) -> xr.Dataset:
    """The summary numbers of one ablation: per-frame loss intact, with `heads` ablated, and with each
    draw of `random_heads` ablated; later-frames loss, advantage and Δ later-frames loss of each.

    intact, ablated: per-token losses (clip, position − 1); random: (draw, clip, position − 1);
    heads: (layer, head) pairs; random_heads: per draw, as many (layer, head) pairs.
    """
    intact, ablated = np.asarray(intact, np.float64), np.asarray(ablated, np.float64)
    random = np.asarray(random, np.float64).reshape(-1, *intact.shape)
    if ablated.shape != intact.shape or len(random) != len(random_heads):
        raise AnalysisError(
            f"losses differ in shape or draws: intact {intact.shape}, ablated {ablated.shape}, "
            f"random {random.shape} for {len(random_heads)} draws"
        )
    if any(len(d) != len(heads) for d in random_heads):
        raise AnalysisError(f"each random draw must hold {len(heads)} heads, as many as the chosen ones")
    frames, f_intact = frame_loss(intact, pos_frame)
    f_ablated = frame_loss(ablated, pos_frame)[1]
    f_random = frame_loss(random, pos_frame)[1] if len(random) else np.zeros((0, frames.size))
    later = {
        k: later_loss(v) for k, v in (("intact", f_intact), ("ablated", f_ablated), ("random", f_random))
    }
    k = len(heads)
    pairs = np.asarray(heads, np.int64).reshape(k, 2)
    drawn = np.asarray(random_heads, np.int64).reshape(len(random_heads), k, 2)
    nats = {"units": "nats"}
    data = {
        "loss_intact": (("frame",), f_intact, {**nats, "long_name": "loss per frame, intact model"}),
        "loss_ablated": (("frame",), f_ablated, {**nats, "long_name": "loss per frame, chosen heads ablated"}),
        "loss_random": (("draw", "frame"), f_random, {**nats, "long_name": "loss per frame, random heads ablated"}),
        "later_intact": ((), float(later["intact"]), nats),
        "later_ablated": ((), float(later["ablated"]), nats),
        "later_random": (("draw",), later["random"], nats),
        "delta_later_ablated": ((), float(later["ablated"] - later["intact"]), nats),
        "delta_later_random": (("draw",), later["random"] - later["intact"], nats),
        "advantage_intact": ((), float(advantage(f_intact))),
        "advantage_ablated": ((), float(advantage(f_ablated))),
        "advantage_random": (("draw",), advantage(f_random) if len(random) else np.zeros(0)),
        "head_layer": (("ablated",), pairs[:, 0]),
        "head_index": (("ablated",), pairs[:, 1]),
        "random_layer": (("draw", "ablated"), drawn[..., 0]),
        "random_index": (("draw", "ablated"), drawn[..., 1]),
    }  # fmt: skip
    return xr.Dataset(
        data,
        coords={"frame": frames, "draw": np.arange(len(random_heads)), "ablated": np.arange(k)},
        attrs={"clips": int(intact.shape[0]), "heads": ",".join(f"{a}.{b}" for a, b in pairs)},
    )
