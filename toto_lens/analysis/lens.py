"""The logit lens: how close each layer's reading of the residual stream is to the model's final prediction.

Each layer's residual stream, passed through the final norm and the output head, gives a next-token
distribution. Per predicted token this module scores it against the final layer's distribution:
KL(final ‖ layer) in nats and whether its top-1 token is the final top-1 (agreement). Tokens are grouped
by the frame of the token they predict (the layout's `pos_frame` one position later), so the first frame,
predicted with no earlier frame to look at, is told apart from the later ones.

The control is another clip's final prediction at the same position: a layer whose numbers are no better
than it reads only where a token is, not what the clip shows.

Functions accept numpy arrays and torch tensors alike (the runner reduces each layer as it goes).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import xarray as xr

from toto_lens.analysis import AnalysisError


def token_divergence(logits: Any, final: Any) -> tuple[Any, Any]:
    """Per token: KL(final ‖ layer) in nats and top-1 agreement (1.0 / 0.0), vocabulary on the last axis.

    `logits` and `final` are unnormalised logits or log-probabilities of one shape (…, vocab); the
    results have shape (…,) and the type of the inputs (torch in, torch out).
    """
    if getattr(logits, "shape", None) != getattr(final, "shape", None):
        raise AnalysisError(f"layer and final logits differ in shape: {logits.shape} vs {final.shape}")
    if hasattr(logits, "log_softmax"):  # torch
        log_q, log_p = logits.float().log_softmax(-1), final.float().log_softmax(-1)
        kl = (log_p.exp() * (log_p - log_q)).sum(-1).clamp_min(0.0)
        agree = (log_q.argmax(-1) == log_p.argmax(-1)).float()
        return kl, agree
    log_q, log_p = _log_softmax(np.asarray(logits)), _log_softmax(np.asarray(final))
    kl = np.maximum((np.exp(log_p) * (log_p - log_q)).sum(-1), 0.0)
    agree = (log_q.argmax(-1) == log_p.argmax(-1)).astype(np.float64)
    return kl, agree


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    shifted = x - x.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def predicted_frame(pos_frame: Any) -> np.ndarray:
    """The frame of the token each position predicts (the next position's frame); -1 where it is no
    visual token (the end token, and the last position, which predicts beyond the clip)."""
    frames = np.asarray(pos_frame, dtype=np.int64)
    return np.append(frames[1:], -1)


def logit_lens(
    kl: Any,
    agreement: Any,
    frame: Any,
    *,
    layer: Any = None,
    control_kl: Any = None,
    control_agreement: Any = None,
) -> xr.Dataset:
    """Per (layer, frame) means of per-token KL and agreement, and per-layer means over every token.

    kl, agreement: (layer, clip, position) per-token values (`token_divergence` of each layer);
    frame: (position,) the frame each position predicts, -1 for positions left out (`predicted_frame`);
    layer: the layer numbers (default 0 … L−1); control_kl / control_agreement: (clip, position) values
    of the control (another clip's final prediction), NaN where a clip had none.
    """
    kl, agreement = np.asarray(kl, dtype=np.float64), np.asarray(agreement, dtype=np.float64)
    frame = np.asarray(frame, dtype=np.int64)
    if kl.ndim != 3 or kl.shape != agreement.shape or kl.shape[-1] != frame.shape[0]:
        raise AnalysisError(
            f"expected kl and agreement (layer, clip, position) and frame (position,), got "
            f"{kl.shape}, {agreement.shape}, {frame.shape}"
        )
    frames = np.unique(frame[frame >= 0])
    if frames.size == 0:
        raise AnalysisError("no position predicts a visual token (every frame is -1)")
    layers = np.arange(kl.shape[0]) if layer is None else np.asarray(layer, dtype=np.int64)
    per_frame = lambda x: np.stack([np.nanmean(x[..., frame == f], axis=(-2, -1)) for f in frames], -1)  # noqa: E731
    kept = frame >= 0
    out = xr.Dataset(
        {
            "kl": (("layer", "frame"), per_frame(kl)),
            "agreement": (("layer", "frame"), per_frame(agreement)),
            "kl_mean": (("layer",), kl[..., kept].mean(axis=(-2, -1))),
            "agreement_mean": (("layer",), agreement[..., kept].mean(axis=(-2, -1))),
            "tokens": (("frame",), np.array([(frame == f).sum() * kl.shape[1] for f in frames])),
        },
        coords={"layer": layers, "frame": frames},
    )
    if control_kl is not None and control_agreement is not None:
        ck = np.asarray(control_kl, dtype=np.float64)[None]
        ca = np.asarray(control_agreement, dtype=np.float64)[None]
        with warnings.catch_warnings():  # a control without any clip pair is NaN on purpose
            warnings.simplefilter("ignore", RuntimeWarning)
            out["control_kl"] = ("frame", per_frame(ck)[0])
            out["control_agreement"] = ("frame", per_frame(ca)[0])
            out.attrs["control_kl_mean"] = float(np.nanmean(ck[..., kept]))
            out.attrs["control_agreement_mean"] = float(np.nanmean(ca[..., kept]))
    out["kl"].attrs["units"] = "nats"
    out.attrs["clips"] = int(kl.shape[1])
    out.attrs["final_layer"] = int(layers[-1])
    return out


def lens_from_logits(layer_logits: Any, final: Any, frame: Any, *, layer: Any = None) -> xr.Dataset:
    """`logit_lens` straight from logits: layer_logits (layer, clip, position, vocab), final (clip,
    position, vocab). Holds every layer's logits at once: for small inputs (tests); the runner reduces
    a layer at a time."""
    pairs = [token_divergence(np.asarray(one), np.asarray(final)) for one in layer_logits]
    return logit_lens(np.stack([k for k, _ in pairs]), np.stack([a for _, a in pairs]), frame, layer=layer)
