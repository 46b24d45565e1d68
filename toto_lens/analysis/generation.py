"""Generation quality: pure measures of generated clips against the true continuation and real tokens.

PROTOCOLS.md ("Generation quality"): FVD needs I3D weights that no package ships offline, so these are
substitutes, named as such. Per-frame PSNR and SSIM against the true frames (scikit-image), the
copy-last-frame baseline (the last prompt frame repeated) that any continuation should beat, the
Jensen-Shannon divergence between the n-gram distributions of generated and real visual codes, and the
Fréchet distance between Gaussians fitted to features of generated and real clips (the features are the
caller's: the project's own probe, or a small network trained on the bundled labels; not I3D, so not FVD).

scikit-image is imported inside the functions that need it, scipy inside `frechet_distance`.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from toto_lens.analysis import AnalysisError
from toto_lens.analysis.ngrams import ngram_counts

PSNR_CAP_DB = 100.0  # PSNR is reported as min(PSNR, 100 dB); identical frames (MSE 0, PSNR +inf) get 100
SSIM_WIN = 7  # SSIM window side: 7 (scikit-image's default), or the largest odd number <= the smaller side
RIDGE = 1e-6  # added, times the mean variance, to both covariances when one is singular
IMAG_TOL = (
    1e-3  # largest |imaginary part| of sqrtm(ΣaΣb), relative to its largest |real part|, taken as noise
)


def _frames(x: object, what: str, data_range: float) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim not in (4, 5) or arr.dtype.kind not in "biuf" or 0 in arr.shape:
        raise AnalysisError(
            f"{what} must be a non-empty real array (clip, frame, H, W) or (clip, frame, H, W, C), "
            f"got dtype {arr.dtype} and shape {arr.shape}"
        )
    arr = arr.astype(np.float64)
    tol = 1e-6 * data_range
    if not np.isfinite(arr).all() or arr.min() < -tol or arr.max() > data_range + tol:
        raise AnalysisError(
            f"{what} must hold finite values in [0, {data_range}] (data_range), got [{arr.min()}, {arr.max()}]; "
            "clip or rescale the frames first"
        )
    return np.clip(arr, 0.0, data_range)


def frame_quality(generated: np.ndarray, truth: np.ndarray, data_range: float = 1.0) -> xr.Dataset:
    """Per-frame PSNR (dB) and SSIM of `generated` against `truth`, both (clip, frame, H, W) or
    (clip, frame, H, W, C) floats in [0, data_range] (C, the last axis, is the colour channel).

    Returns a Dataset with `psnr` and `ssim`, dims (clip, frame), and `identical` (bool, the frames are
    equal, MSE 0). PSNR is capped at `PSNR_CAP_DB` (100 dB): identical frames, whose PSNR is +inf, report
    100 dB, so means stay finite; `identical` counts them. SSIM uses a uniform square window of side
    `SSIM_WIN` (7), or the largest odd number not above the frame's smaller side when that is under 7
    (5 for 5×5 frames); frames under 3 pixels a side are refused. Attributes state the cap and window.
    """
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    if not np.isfinite(data_range) or data_range <= 0:
        raise AnalysisError(f"data_range must be a positive number, got {data_range!r}")
    gen = _frames(generated, "generated", data_range)
    true = _frames(truth, "truth", data_range)
    if gen.shape != true.shape:
        raise AnalysisError(
            f"generated and truth frames must have the same shape, got {gen.shape} and {true.shape}"
        )
    side = min(gen.shape[2], gen.shape[3])
    win = min(SSIM_WIN, side if side % 2 else side - 1)
    if win < 3:
        raise AnalysisError(f"SSIM needs frames at least 3 pixels a side, got {gen.shape[2]}x{gen.shape[3]}")
    channel_axis = -1 if gen.ndim == 5 else None
    clips, frames = gen.shape[:2]
    psnr = np.empty((clips, frames))
    ssim = np.empty((clips, frames))
    identical = np.zeros((clips, frames), dtype=bool)
    for c in range(clips):
        for f in range(frames):
            a, b = true[c, f], gen[c, f]
            identical[c, f] = bool(np.array_equal(a, b))
            with np.errstate(divide="ignore"):
                value = np.inf if identical[c, f] else peak_signal_noise_ratio(a, b, data_range=data_range)
            psnr[c, f] = min(float(value), PSNR_CAP_DB)
            ssim[c, f] = structural_similarity(
                a, b, win_size=win, data_range=data_range, channel_axis=channel_axis
            )
    dims = ("clip", "frame")
    return xr.Dataset(
        {
            "psnr": (dims, psnr, {"units": "dB", "long_name": f"PSNR, capped at {PSNR_CAP_DB:g} dB"}),
            "ssim": (dims, ssim, {"long_name": "SSIM"}),
            "identical": (
                dims,
                identical,
                {"long_name": "frame equals the truth (PSNR +inf, reported capped)"},
            ),
        },
        coords={"clip": np.arange(clips), "frame": np.arange(frames)},
        attrs={"data_range": float(data_range), "psnr_cap_db": PSNR_CAP_DB, "ssim_win_size": int(win)},
    )


def copy_last_frames(prompt_frames: np.ndarray, n: int) -> np.ndarray:
    """The copy-last-frame baseline: prompt frames (clip, k, H, W[, C]) → (clip, n, H, W[, C]), each clip's
    last prompt frame repeated n times (a new array, same dtype)."""
    arr = np.asarray(prompt_frames)
    if arr.ndim not in (4, 5) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise AnalysisError(
            f"prompt frames must be (clip, k, H, W) or (clip, k, H, W, C) with k >= 1, got shape {arr.shape}"
        )
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1:
        raise AnalysisError(f"n (frames to continue) must be a positive integer, got {n!r}")
    return np.repeat(arr[:, -1:], int(n), axis=1)


def frame_change(frames: np.ndarray) -> float:
    """Mean absolute change between consecutive frames of clips (clip, frame, H, W[, C]), in the frames'
    units: small for a video (the next frame is nearly the last), large for a sequence of unrelated
    images. What tells the two apart in the paper's Fig. 15 ([1] makes videos, [3] image sequences)."""
    arr = np.asarray(frames, dtype=np.float64)
    if arr.ndim not in (4, 5) or arr.shape[1] < 2:
        raise AnalysisError(
            f"frames must be (clip, frame, H, W[, C]) with at least 2 frames, got {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise AnalysisError("frames hold NaN or infinite values")
    return float(np.abs(np.diff(arr, axis=1)).mean())


def _codes(x: object, what: str, grid: tuple[int, int]) -> np.ndarray:
    arr = np.asarray(x)
    rows, cols = grid
    if arr.ndim != 2 or arr.dtype.kind not in "iu" or arr.size == 0 or arr.shape[1] % (rows * cols):
        raise AnalysisError(
            f"{what} must be integer codes (sequences, frames·{rows}·{cols}), got dtype {arr.dtype} and "
            f"shape {arr.shape}"
        )
    return arr.reshape(-1, rows, cols)  # (frame, row, col): n-grams never cross a frame


def ngram_divergence(
    generated: np.ndarray,
    reference: np.ndarray,
    grid: tuple[int, int],
    n: int = 1,
    vocab: int | None = None,
) -> float:
    """Jensen-Shannon divergence, in bits (log base 2, so in [0, 1]), between the n-gram distributions of
    `generated` and `reference` visual codes, each (sequences, frames·R·C) code ids in [0, vocab) (not
    token ids: strip special tokens and the code offset first), `grid` = (R, C).

    n-grams are counted by `ngrams.ngram_counts`: raster order within each frame (a window runs on from
    one row to the next but never spans two frames). The distributions are the exact relative counts, no
    smoothing: an n-gram seen on one side only contributes through the mixture. `vocab` defaults to one
    more than the largest code of either side; it only sets the key encoding, not the result.
    """
    if len(grid) != 2 or min(int(grid[0]), int(grid[1])) < 1:
        raise AnalysisError(f"grid must be (rows, cols), both positive, got {grid!r}")
    grid = (int(grid[0]), int(grid[1]))
    gen, ref = _codes(generated, "generated codes", grid), _codes(reference, "reference codes", grid)
    if vocab is None:
        vocab = int(max(gen.max(), ref.max())) + 1
    keys_g, count_g = ngram_counts(gen, n, vocab)
    keys_r, count_r = ngram_counts(ref, n, vocab)
    keys = np.union1d(keys_g, keys_r)
    p = np.zeros(keys.size)
    q = np.zeros(keys.size)
    p[np.searchsorted(keys, keys_g)] = count_g / count_g.sum()
    q[np.searchsorted(keys, keys_r)] = count_r / count_r.sum()
    m = (p + q) / 2

    def kl(x: np.ndarray) -> float:
        seen = x > 0
        return float((x[seen] * np.log2(x[seen] / m[seen])).sum())

    return float(np.clip((kl(p) + kl(q)) / 2, 0.0, 1.0))


def _features(x: object, what: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 2 or arr.dtype.kind not in "biuf" or arr.shape[1] == 0:
        raise AnalysisError(
            f"{what} must be a real array (n, d), got dtype {arr.dtype} and shape {arr.shape}"
        )
    if arr.shape[0] < 2:
        raise AnalysisError(f"{what} has {arr.shape[0]} sample(s); a covariance needs n >= 2 per set")
    if not np.isfinite(arr).all():
        raise AnalysisError(f"{what} holds NaN or infinite values")
    return arr.astype(np.float64)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (n, d) (n may differ, d may not):
    ||μa − μb||² + Tr(Σa + Σb − 2(ΣaΣb)^½), covariances unbiased (n − 1), needs n >= 2 per set.

    The square root is `scipy.linalg.sqrtm`; its imaginary part is dropped when it is numerical noise (at
    most `IMAG_TOL` = 1e-3 of the largest real entry) and refused with an AnalysisError otherwise. When
    either covariance is singular (n <= d, or a constant feature), `RIDGE` (1e-6) times the mean variance
    is added to the diagonal of both, so that a set against itself still gives 0. A negative result from
    rounding is reported as 0.
    """
    from scipy.linalg import sqrtm

    fa, fb = _features(a, "features a"), _features(b, "features b")
    if fa.shape[1] != fb.shape[1]:
        raise AnalysisError(f"feature sets must have the same width d, got {fa.shape[1]} and {fb.shape[1]}")
    mu = fa.mean(axis=0) - fb.mean(axis=0)
    cov_a = np.atleast_2d(np.cov(fa, rowvar=False))
    cov_b = np.atleast_2d(np.cov(fb, rowvar=False))
    d = cov_a.shape[0]
    if min(np.linalg.matrix_rank(cov_a, hermitian=True), np.linalg.matrix_rank(cov_b, hermitian=True)) < d:
        scale = (np.trace(cov_a) + np.trace(cov_b)) / (2 * d)
        ridge = RIDGE * (scale if scale > 0 else 1.0) * np.eye(d)
        cov_a, cov_b = cov_a + ridge, cov_b + ridge
    root = sqrtm(cov_a @ cov_b)
    if np.iscomplexobj(root):
        imag = float(np.abs(root.imag).max())
        if imag > IMAG_TOL * max(float(np.abs(root.real).max()), np.finfo(float).tiny):
            raise AnalysisError(
                f"sqrtm(ΣaΣb) has an imaginary part of {imag:.3g}, more than numerical noise; "
                "the covariances are ill-conditioned (more samples or fewer features)"
            )
        root = root.real
    value = float(mu @ mu + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(root))
    return max(value, 0.0)
