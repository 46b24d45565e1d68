"""`studies.lens`: the logit lens of a checkpoint on clips of its cache.

Each layer's residual stream read through the final norm and output head: how far its next-token
distribution is from the final one (KL in nats), how often its top-1 token is the final top-1, per layer
and per predicted frame, beside a control (another clip's final prediction at the same position), and
one clip's top-1 predictions decoded to pixels, layer by layer.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from toto_lens.progress import Progress
from toto_lens.studies.base import (
    Study,
    StudyError,
    Summary,
    cache_args,
    cache_checkpoint,
    cache_with_tokens,
    command_line,
    fmt,
    provenance,
)


def lens(
    ckpt: str | os.PathLike | None = None,
    *,
    cache: Any = None,
    dataset: str | None = None,
    clips: int = 32,
    clip: int = 0,
    progress: Progress | None = None,
    trust_code: bool = False,
) -> Study:
    """KL(final ‖ layer) and top-1 agreement per layer and frame on the first `clips` complete clips of the
    cache; clip: which of them to decode layer by layer. Options as `toto-lens lens`; trust_code: load a
    checkpoint or tokenizer that names code to import (`--trust-code`)."""
    from toto_lens.figures.lens import lens_figure, lens_grid_figure
    from toto_lens.run.lens import run_lens

    if clips <= 0:
        raise StudyError(f"clips={clips}: the logit lens needs at least one clip")
    ds = cache_with_tokens(ckpt, cache, dataset)
    tokens = ds["tokens"].isel(clip=slice(0, clips))
    if not 0 <= clip < tokens.sizes["clip"]:
        raise StudyError(
            f"clip={clip}: choose one of the first {tokens.sizes['clip']} clips (0 … {tokens.sizes['clip'] - 1})"
        )
    ck, changed = cache_checkpoint(ds, trust_code=trust_code, what="the logit lens")
    result = run_lens(ck, tokens.values, ds["pos_frame"].values, progress=progress)
    notes = changed + _grid(result, ck, ds, tokens.values[clip], int(tokens["clip"].values[clip]), trust_code)
    result.attrs.update(provenance("lens", ds, clips=int(tokens.sizes["clip"]), clip=clip))
    result.attrs["command"] = command_line(
        "lens", *cache_args(ckpt, cache, ds, dataset), "--clips", clips, "--clip", clip or None,
        "--trust-code", trust_code,
    )  # fmt: skip
    figures = [lens_figure(result)] + ([lens_grid_figure(result)] if "grid" in result else [])
    return Study("lens", result, figures, lens_summary(result, notes))


def _grid(result: Any, ck: Any, ds: Any, tokens: np.ndarray, clip_id: int, trust_code: bool) -> list[str]:
    """Add the decoded grid (the clip's frames, then each layer's top-1 predictions) to the result."""
    from toto_lens.data.layout import layout_of
    from toto_lens.errors import TotoLensError
    from toto_lens.run.lens import top1_frames
    from toto_lens.store.reader import cache_tokenizer

    layout = layout_of(ds)
    try:
        tok = cache_tokenizer(ds, trust_code=trust_code)
        codes = top1_frames(ck, tokens, layout)
        truth = layout.unpack(tokens)[None]
        pixels = np.asarray(tok.decode(np.concatenate([truth, codes]).astype(np.int64)), dtype=np.float32)
    except (TotoLensError, ValueError) as e:
        return [f"note: predictions not decoded ({str(e).splitlines()[0]})"]
    pixels = pixels.mean(-1) if pixels.ndim == 5 else pixels  # colour shown by its mean over channels
    result["grid"] = (("grid_row", "frame", "y", "x"), pixels, {"long_name": "decoded pixels in [0, 1]"})
    result.coords["grid_row"] = ["clip", *(f"{int(v)}" for v in result["layer"].values)]
    result.attrs["grid_clip"] = clip_id
    return []


def lens_summary(result: Any, notes: list[str]) -> Summary:
    """Per layer: mean KL and agreement over every predicted token, and on the first and later frames."""
    frames = result["frame"].values
    first, later = frames[0], frames[1:]
    rows = []
    for layer in result["layer"].values:
        one = result.sel(layer=layer)
        rows.append({
            "layer": int(layer),
            "kl": float(one["kl_mean"]),
            "agreement": float(one["agreement_mean"]),
            "kl_first_frame": float(one["kl"].sel(frame=first)),
            "kl_later_frames": float(one["kl"].sel(frame=later).mean()) if later.size else float("nan"),
        })  # fmt: skip
    a = result.attrs
    control = (a.get("control_kl_mean"), a.get("control_agreement_mean"))
    data = {"clips": a.get("clips"), "rows": rows, "control_kl": control[0], "control_agreement": control[1]}
    head = [
        f"{a.get('clips')} clips; the last layer ({a.get('final_layer')}) is the model's output "
        f"(KL 0, agreement 1); control, another clip's final prediction: KL {fmt(control[0])} nats, "
        f"agreement {fmt(control[1], '.1%')}"
    ]
    return Summary(
        title="logit lens: each layer against the final prediction",
        columns=["layer", "KL (nats)", "agreement", "KL frame 0", "KL frames ≥ 1"],
        rows=[
            [
                str(r["layer"]),
                fmt(r["kl"]),
                fmt(r["agreement"], ".1%"),
                fmt(r["kl_first_frame"]),
                fmt(r["kl_later_frames"]),
            ]
            for r in rows
        ],  # fmt: skip
        data=data,
        notes=[*notes, *head],
        caption="layer 0 is the token embedding, layer i the output of block i",
    )
