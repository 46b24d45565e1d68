"""`studies.generation`: clips sampled from a checkpoint, decoded to frames, and how good they are.

From a start token alone (`prompt_frames=0`: the appendix's Fig. 15 compares [1], a video, with [3], a
sequence of images) or continuing the first k frames of the cache's real clips, sampling with the KV
cache over the visual codes (`toto_lens.run.generate`). Quality on the same clips, beside the true
continuation and the copy-last-frame baseline (`toto_lens.analysis.generation`):

- PSNR and SSIM per frame against the true continuation, all decoded by the cache's tokenizer (so the
  tokenizer's own loss is not counted against the model; the true continuation scores the ceiling);
- the Jensen-Shannon divergence of the generated codes' unigram and bigram distributions from those of
  other clips of the cache (the true continuation's divergence is the floor sampling noise gives);
- the Fréchet distance between per-frame features of the model's own middle layer on real and on
  generated frames (the FVD analogue, with no downloaded network: PROTOCOLS.md, "Generation quality").
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from toto_lens.errors import TotoLensError
from toto_lens.progress import Progress, say
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

CONTINUATIONS = ("generated", "copy-last", "truth")
REFERENCE_CLIPS = 256  # other clips of the cache whose codes are the n-gram reference


def generation(
    ckpt: str | os.PathLike | None = None,
    *,
    cache: Any = None,
    dataset: str | None = None,
    start: str = "video",
    prompt_frames: int = 1,
    clips: int = 8,
    frames: int | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int = 0,
    layer: int | None = None,
    progress: Progress | None = None,
    trust_code: bool = False,
) -> Study:
    """Sample `clips` clips of `frames` frames (default: the model's) continuing the first `prompt_frames`
    frames of the cache's first clips (0: from the `start` token alone), decode them, and measure them
    against the true continuation and the copy-last baseline. Options as `toto-lens generate`."""
    from toto_lens.data.layout import layout_of
    from toto_lens.figures.generation import generation_figure, quality_figure
    from toto_lens.run.generate import Sampling, generate_clips
    from toto_lens.store.reader import cache_tokenizer

    start = {"image": "images"}.get(start, start)
    ds = cache_with_tokens(ckpt, cache, dataset)
    layout = layout_of(ds)
    frames = layout.frames if frames is None else frames
    _check(start, prompt_frames, clips, frames, layout, ds.sizes["clip"])
    try:
        sampling = Sampling(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    except TotoLensError as e:
        raise StudyError(str(e)) from None
    ck, notes = cache_checkpoint(ds, trust_code=trust_code, what="generation")
    tok = cache_tokenizer(ds, trust_code=trust_code)
    real = np.asarray(ds["tokens"].isel(clip=slice(0, clips)).values, dtype=np.int64)
    tpf = layout.tokens_per_frame
    prompts = real[:, 1 : 1 + prompt_frames * tpf] if prompt_frames else None
    say(progress, "generate", f"{clips} clips of {frames} frames from {ck.name} ({prompt_frames} given)")
    ids = generate_clips(
        ck.model, layout, start=start, prompts=prompts, n_clips=clips, frames=frames, sampling=sampling,
        progress=progress,
    )  # fmt: skip
    codes = codes_of(ids, layout, frames)
    result = _quality(ck, tok, ds, layout, real, codes, ids, prompt_frames, layer)
    result.attrs.update(provenance(
        "generation", ds, start=start, prompt_frames=prompt_frames, clips=clips, frames=frames,
        temperature=temperature, top_k=top_k, top_p=top_p, seed=seed, layer=result.attrs["feature_layer"],
    ))  # fmt: skip
    result.attrs["notes"] = notes
    result.attrs["command"] = command_line(
        "generate", *cache_args(ckpt, cache, ds, dataset), "--start", start, "--prompt-frames", prompt_frames,
        "--clips", clips, "--frames", frames, "--temperature", temperature, "--top-k", top_k, "--top-p", top_p,
        "--seed", seed, "--layer", layer, "--trust-code", trust_code,
    )  # fmt: skip
    figures = [generation_figure(result), quality_figure(result)]
    summary = generation_summary(result)
    return Study("generation", result, figures, summary, title="Generated clips", out_is_folder=True)


def _check(start: str, prompt_frames: int, clips: int, frames: int, layout: Any, available: int) -> None:
    if start not in layout.start_ids:
        raise StudyError(f"start {start!r}: choose video ([1], a video) or image ([3], a sequence of images)")
    if not 0 <= prompt_frames < layout.frames:
        raise StudyError(
            f"prompt frames {prompt_frames}: give 0 … {layout.frames - 1} (the clips have {layout.frames})"
        )
    if frames <= prompt_frames:
        raise StudyError(f"frames {frames}: generate more frames than the {prompt_frames} given")
    if not 1 <= clips <= available:
        raise StudyError(f"clips {clips}: the cache has {available} complete clips; give 1 … {available}")


def codes_of(ids: np.ndarray, layout: Any, frames: int) -> np.ndarray:
    """(clip, frame, row, col) visual codes of generated sequences [start, frames…, end]."""
    visual = ids[:, 1 : 1 + frames * layout.tokens_per_frame] - layout.code_offset
    return visual.reshape(len(ids), frames, layout.rows, layout.cols)


def _quality(ck, tok, ds, layout, real, codes, ids, k: int, layer: int | None):
    """The quality Dataset along `continuation` (generated, copy-last, truth): PSNR/SSIM per frame, n-gram
    divergence from other clips, Fréchet distance of per-frame features to the real frames', on the frames
    after the prompt that the true clips have; with the decoded frames and the generated ids."""
    import xarray as xr

    from toto_lens.analysis.generation import (
        copy_last_frames,
        frame_quality,
        frechet_distance,
        ngram_divergence,
    )

    n, frames = codes.shape[:2]
    shared = min(frames, layout.frames)  # frames the true clips have
    later = slice(k, shared)
    truth_codes = codes_of(real, layout, layout.frames)
    copy_codes = truth_codes.copy()
    if k:
        copy_codes[:, k:] = truth_codes[:, k - 1 : k]
    conts = {
        "generated": codes[:, :shared],
        "copy-last": copy_codes[:, :shared],
        "truth": truth_codes[:, :shared],
    }
    generated, truth = decode(tok, codes), decode(tok, truth_codes)
    pixels = {"generated": generated[:, later], "truth": truth[:, later]}
    pixels["copy-last"] = copy_last_frames(truth[:, :k], shared - k) if k else None
    others = np.asarray(ds["tokens"].isel(clip=slice(n, n + REFERENCE_CLIPS)).values)
    reference = codes_of(others, layout, layout.frames).reshape(len(others), -1)
    layer = len(ck.model.blocks) // 2 if layer is None else layer
    starts = {"generated": ids[:, 0], "copy-last": real[:, 0], "truth": real[:, 0]}
    feats = {
        c: frame_features_of(ck, layout, layer, real, starts[c], conts[c])[:, later] for c in CONTINUATIONS
    }
    real_feats = feats["truth"].reshape(-1, feats["truth"].shape[-1])
    data: dict[str, Any] = {}
    for stat in ("psnr", "ssim"):
        rows = [np.full(shared - k, np.nan) if pixels[c] is None else
                frame_quality(pixels[c], truth[:, later])[stat].values for c in CONTINUATIONS]  # fmt: skip
        data[stat] = (
            ("continuation", "clip", "frame"),
            np.stack([np.broadcast_to(r, (n, shared - k)) for r in rows]),
        )
    absent = set() if k else {"copy-last"}  # no frame given, nothing to copy: that row stays empty
    for gram in (1, 2):
        values = [ngram_divergence(conts[c][:, later].reshape(n, -1), reference, (layout.rows, layout.cols), n=gram)
                  if len(reference) and c not in absent else np.nan for c in CONTINUATIONS]  # fmt: skip
        data[f"ngram_js_{gram}"] = ("continuation", np.array(values, dtype=np.float64))
    data["frechet"] = ("continuation", np.array(
        [np.nan if c in absent else frechet_distance(feats[c].reshape(-1, real_feats.shape[-1]), real_feats)
         for c in CONTINUATIONS]
    ))  # fmt: skip
    # colour frames are kept by their mean over channels, as every frame view shows them
    data["generated_frames"] = (
        ("clip", "gen_frame", "y", "x"),
        generated.mean(-1) if generated.ndim == 5 else generated,
    )
    data["true_frames"] = (("clip", "true_frame", "y", "x"), truth.mean(-1) if truth.ndim == 5 else truth)
    data["tokens"] = (("clip", "sequence_position"), ids.astype(np.int32))
    coords = {
        "continuation": list(CONTINUATIONS),
        "frame": np.arange(k, shared),
        "clip": np.asarray(ds["clip"].values[:n]),
    }
    result = xr.Dataset(data, coords=coords)
    result.attrs.update(
        {"prompt_frames": k, "frames": frames, "feature_layer": layer, "reference_clips": len(reference)}
    )
    return result


def decode(tok: Any, codes: np.ndarray) -> np.ndarray:
    """(clip, frame, H, W) pixels in [0, 1] of (clip, frame, row, col) codes, through the tokenizer."""
    return np.asarray(tok.decode(np.asarray(codes, dtype=np.int64)), dtype=np.float32)


def frame_features_of(
    ck, layout, layer: int, real: np.ndarray, start: np.ndarray, codes: np.ndarray
) -> np.ndarray:
    """Per-frame features (clip, frame, feature) of sequences whose first frames are `codes` (clip, f, R, C),
    the start token `start`, and the real clips' frames after them (so that the sequence fits the model)."""
    from toto_lens.run.features import frame_features

    tokens = real.copy()
    tokens[:, 0] = start
    f = codes.shape[1]
    tokens[:, 1 : 1 + f * layout.tokens_per_frame] = codes.reshape(len(codes), -1) + layout.code_offset
    return frame_features(ck.model, tokens, layout, layer)[:, :f]


def generation_summary(result: Any) -> Summary:
    """Per continuation (generated, copy-last, truth): PSNR, SSIM, n-gram divergences, Fréchet distance."""
    a = result.attrs
    rows = []
    for c in result["continuation"].values:
        one = result.sel(continuation=c)
        rows.append({
            "continuation": str(c),
            "psnr": float(one["psnr"].mean()),
            "ssim": float(one["ssim"].mean()),
            "ngram_js_1": float(one["ngram_js_1"]), "ngram_js_2": float(one["ngram_js_2"]),
            "frechet": float(one["frechet"]),
        })  # fmt: skip
    k, frames = a.get("prompt_frames"), a.get("frames")
    return Summary(
        title=f"{result.sizes['clip']} clips: {k} frames given, {frames} in all; quality on frames {k}–{int(result['frame'].max())}",
        columns=[
            "continuation",
            "PSNR dB",
            "SSIM",
            "JS unigram",
            "JS bigram",
            f"Fréchet (layer {a.get('feature_layer')})",
        ],
        rows=[
            [
                r["continuation"],
                fmt(r["psnr"], ".2f"),
                fmt(r["ssim"]),
                fmt(r["ngram_js_1"]),
                fmt(r["ngram_js_2"]),
                fmt(r["frechet"], ".2f"),
            ]
            for r in rows
        ],  # fmt: skip
        data={
            "prompt_frames": k,
            "frames": frames,
            "clips": result.sizes["clip"],
            "rows": rows,
            "feature_layer": a.get("feature_layer"),
        },  # fmt: skip
        notes=list(a.get("notes") or []),
        caption=(
            "PSNR/SSIM against the true continuation, both decoded by the tokenizer (truth: the ceiling; "
            "identical frames count as 100 dB); JS: Jensen-Shannon divergence (bits) of the codes' "
            f"n-grams from {a.get('reference_clips')} other clips; Fréchet: per-frame features of the model's "
            "layer on generated vs real frames"
        ),
    )
