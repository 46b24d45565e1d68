"""Tokenizers: shapes, reconstruction against a trivial baseline, determinism, codebook usage, the random
codebook's vocabulary change without refit, exact save/load, adapters, and one clear error per bad input.

Frames are built here as the data module builds them: sklearn's 8×8 digits (bundled, no download) scaled
to [0, 1], upscaled 2× to 16×16 and pasted at a random offset on a black 32×32 canvas.
"""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from toto_lens.errors import TotoLensError
from toto_lens.tokenizers import (
    ExternalTokenizer,
    PatchKMeans,
    RandomCodebook,
    TokenizerError,
    check_tokenizer,
    load_tokenizer,
    load_tokenizer_dir,
    patchify,
    register_tokenizer,
    save_tokenizer,
    tokenizer_from_spec,
    unpatchify,
)
from toto_lens.tokenizers import registry as registry_module


def digit_frames(n: int, seed: int) -> np.ndarray:
    """[n, 32, 32] float32 in [0, 1]: one upscaled digit at a random place on a black canvas."""
    from sklearn.datasets import load_digits

    digits = load_digits().images.astype(np.float32) / 16  # (1797, 8, 8)
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 32, 32), np.float32)
    for i, j in enumerate(rng.integers(0, len(digits), n)):
        y, x = rng.integers(0, 32 - 16 + 1, 2)
        out[i, y : y + 16, x : x + 16] = np.kron(digits[j], np.ones((2, 2), np.float32))
    return out


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) - b) ** 2))


@pytest.fixture(scope="module")
def train() -> np.ndarray:
    return digit_frames(300, seed=0)


@pytest.fixture(scope="module")
def val() -> np.ndarray:
    return digit_frames(200, seed=1)  # other digits at other places: held out


@pytest.fixture(scope="module")
def kmeans(train) -> PatchKMeans:
    return PatchKMeans.fit(train, vocab_size=512, patch=4, seed=0)


@pytest.fixture(scope="module")
def random_cb(train) -> RandomCodebook:
    return RandomCodebook.fit(train, vocab_size=512, patch=4, latent_dim=4, seed=0)


@pytest.fixture(params=["kmeans", "random_cb"])
def tok(request):
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="module")
def mean_patch_mse(train, val) -> float:
    """The trivial baseline: every val patch decoded to the mean training patch (≈ 0.053 measured)."""
    mean = patchify(train, 4).reshape(-1, 16).mean(0)
    return mse(patchify(val, 4).reshape(-1, 16), mean[None])


def test_patchify_is_raster_order_and_inverted_by_unpatchify():
    x = np.arange(2 * 8 * 12, dtype=np.float32).reshape(2, 8, 12)
    p = patchify(x, 4)
    assert p.shape == (2, 2, 3, 16), "8×12 frames in 4×4 patches must give a 2×3 grid of 16 pixels"
    assert np.array_equal(p[0, 1, 2].reshape(4, 4), x[0, 4:8, 8:12]), "patch (1, 2) must be that block"
    assert np.array_equal(unpatchify(p, 4), x), "unpatchify must invert patchify exactly"


def test_round_trip_shapes_dtypes_and_range(tok, val):
    ids = tok.encode(val[:7])
    assert ids.shape == (7, 8, 8) and ids.dtype == np.int64, "32×32 at patch 4 must give int64 [F, 8, 8]"
    assert tok.grid == (8, 8) and tok.image_size == (32, 32) and tok.patch == 4
    assert ids.min() >= 0 and ids.max() < tok.vocab_size, "codes must lie in [0, vocab_size)"
    rec = tok.decode(ids)
    assert rec.shape == (7, 32, 32) and rec.dtype == np.float32, "decode must give float32 [F, H, W] back"
    assert rec.min() >= 0 and rec.max() <= 1, "decoded frames must stay in [0, 1]"
    assert tok.encode(val[:0]).shape == (0, 8, 8), "zero frames must encode to an empty grid stack"


def test_batches_of_clips_keep_their_leading_shape(tok, val):
    clips = val[:12].reshape(3, 4, 32, 32)  # (B, F, H, W)
    ids = tok.encode(clips)
    assert ids.shape == (3, 4, 8, 8), "[B, F, H, W] must encode to [B, F, rows, cols]"
    assert np.array_equal(ids[1], tok.encode(clips[1])), "a clip must get the same ids alone or in a batch"
    assert tok.decode(ids).shape == (3, 4, 32, 32), "[B, F, rows, cols] must decode to [B, F, H, W]"


def test_encoding_matches_an_exhaustive_search(kmeans, random_cb, val):
    """The fast paths (chunked matmul, k-d tree) must find the true nearest code."""
    patches = patchify(val[:50], 4).reshape(-1, 16)
    cases = [(kmeans, patches, kmeans.centroids), (random_cb, random_cb.latents(patches), random_cb.codebook)]
    for tok, x, codes in cases:
        ids = tok.encode(val[:50]).reshape(-1)
        dist = ((x[:, None] - codes[None]) ** 2).sum(-1)  # (M, V), pixel or latent space
        chosen = dist[np.arange(len(ids)), ids]
        assert np.all(chosen <= dist.min(1) + 1e-5), f"{tok.name}: encode must pick a nearest code"


def test_kmeans_reconstructs_held_out_frames(kmeans, val, mean_patch_mse):
    # Measured: 0.0023 on these val frames (the fit's own training MSE is 0.0014); the bound leaves
    # ≈ 1.7× margin for other BLAS/sklearn versions, and a broken codebook sits near the 0.053 baseline.
    err = mse(kmeans.decode(kmeans.encode(val)), val)
    assert err < 0.004, f"k-means-512 val reconstruction MSE {err:.4f} should be ≈ 0.0023"
    assert err < mean_patch_mse / 10, f"k-means MSE {err:.4f} must beat the mean-patch baseline tenfold"


def test_random_codebook_reconstructs_held_out_frames(random_cb, val, mean_patch_mse):
    # Measured: 0.0128 at 512 random codes; a 4-d PCA latent alone loses 0.0060 (its floor). A random
    # codebook is much coarser than k-means, so the claim is only that it clearly beats the baseline.
    err = mse(random_cb.decode(random_cb.encode(val)), val)
    assert err < 0.02, f"random-codebook-512 val reconstruction MSE {err:.4f} should be ≈ 0.013"
    assert err < mean_patch_mse / 2.5, f"random-codebook MSE {err:.4f} must beat the mean-patch baseline"


def test_kmeans_uses_most_of_its_codebook_on_held_out_frames(kmeans, val):
    used = len(np.unique(kmeans.encode(val))) / kmeans.vocab_size
    # Measured ≈ 0.92: dedupe + count weights + k-means++ seeding leave few dead codes.
    assert used > 0.5, f"only {used:.0%} of the 512 codes are used on val frames: the fit wastes its codebook"


def test_fitting_is_deterministic_for_a_seed(train, kmeans, random_cb, val):
    for cls, fitted in [(PatchKMeans, kmeans), (RandomCodebook, random_cb)]:
        again, other = cls.fit(train, vocab_size=512, seed=0), cls.fit(train, vocab_size=512, seed=1)
        for key, arr in fitted.state_dict().items():
            assert np.array_equal(again.state_dict()[key], arr), f"{cls.__name__}: same seed, other {key!r}"
        assert np.array_equal(again.encode(val), fitted.encode(val)), f"{cls.__name__}: same seed, other ids"
        assert not np.array_equal(other.codebook, fitted.codebook), f"{cls.__name__}: seed 1 = seed 0"


def test_max_patches_subsamples_whole_frames(train):
    tok = PatchKMeans.fit(train, vocab_size=16, max_patches=64 * 50, seed=3)
    assert tok.fit_info["fit_patches"] == 64 * 50, "max_patches must cap the patches fitted on (50 frames)"


def test_with_vocab_changes_the_vocabulary_without_refit(random_cb, val):
    big = random_cb.with_vocab(32768)
    assert big.vocab_size == 32768 and big.spec["vocab_size"] == 32768
    assert np.array_equal(big.projection, random_cb.projection), "with_vocab must keep the fitted projection"
    assert np.array_equal(big.mean, random_cb.mean), "with_vocab must keep the patch mean"
    assert np.array_equal(big.codebook[:512], random_cb.codebook), "same seed: codebooks must be nested"
    ids = big.encode(val)
    assert ids.max() >= 512, "a 32768-code tokenizer should use codes beyond the first 512"
    assert big.decode(ids).shape == val.shape
    # Measured 0.0193, 0.0128, 0.0100, 0.0079: nested codebooks make the error non-increasing.
    errors = [mse(t.decode(t.encode(val)), val) for t in map(random_cb.with_vocab, (64, 512, 4096, 32768))]
    assert np.all(np.diff(errors) <= 1e-6), f"more codes must not reconstruct worse: {errors}"
    assert not np.array_equal(random_cb.with_vocab(512, seed=7).codebook, random_cb.codebook), "must redraw"


def test_save_load_round_trip_is_exact(tok, val, tmp_path):
    folder = save_tokenizer(tok, tmp_path / "tok")
    assert sorted(p.name for p in folder.iterdir()) == ["tokenizer.json", "tokenizer.safetensors"]
    assert json.loads((folder / "tokenizer.json").read_text()) == tok.spec, "tokenizer.json must be the spec"
    back = load_tokenizer_dir(folder)
    assert type(back) is type(tok) and back.spec == tok.spec
    for key, arr in tok.state_dict().items():
        assert np.array_equal(back.state_dict()[key], arr), f"state {key!r} changed in the round trip"
    ids = tok.encode(val[:20])
    assert np.array_equal(back.encode(val[:20]), ids) and np.array_equal(back.decode(ids), tok.decode(ids))
    assert [p.name for p in tmp_path.iterdir()] == ["tok"], "no temporary folder may be left behind"
    state = {k: torch.from_numpy(v) for k, v in tok.state_dict().items()}  # as Checkpoint.tokenizer_state
    assert np.array_equal(tokenizer_from_spec(tok.spec, state).encode(val[:20]), ids), "torch state must do"


def test_save_refuses_an_existing_folder_unless_overwrite(kmeans, random_cb, tmp_path):
    save_tokenizer(kmeans, tmp_path / "tok")
    with pytest.raises(TokenizerError, match="already exists; pass overwrite=True"):
        save_tokenizer(random_cb, tmp_path / "tok")
    save_tokenizer(random_cb, tmp_path / "tok", overwrite=True)
    assert isinstance(load_tokenizer_dir(tmp_path / "tok"), RandomCodebook), "overwrite must replace it"
    assert [p.name for p in tmp_path.iterdir()] == ["tok"], "the old folder must be removed after the swap"


def test_broken_folders_raise_one_line_errors_naming_the_file(kmeans, tmp_path):
    with pytest.raises(TokenizerError, match="tokenizer.json is missing"):
        load_tokenizer_dir(tmp_path / "nothing")
    folder = save_tokenizer(kmeans, tmp_path / "tok")
    (folder / "tokenizer.safetensors").write_bytes((folder / "tokenizer.safetensors").read_bytes()[:40])
    with pytest.raises(TokenizerError, match="tokenizer.safetensors is truncated or corrupted"):
        load_tokenizer_dir(folder)
    (folder / "tokenizer.safetensors").unlink()
    with pytest.raises(TokenizerError, match="tokenizer.safetensors is missing"):
        load_tokenizer_dir(folder)
    (folder / "tokenizer.json").write_text("{not json")
    with pytest.raises(TokenizerError, match="tokenizer.json is not valid JSON"):
        load_tokenizer_dir(folder)
    state = kmeans.state_dict()
    with pytest.raises(TokenizerError, match="state misses 'mean'"):
        tokenizer_from_spec(kmeans.spec, {k: v for k, v in state.items() if k != "mean"})
    with pytest.raises(TokenizerError, match=r"'codebook' has shape \[10, 16\] but the spec implies \[512"):
        tokenizer_from_spec(kmeans.spec, {**state, "codebook": state["codebook"][:10]})


BAD_FRAMES = [
    (np.zeros((32, 32), np.float32), r"must be \[F, H, W\] or \[B, F, H, W\], got shape \(32, 32\)"),
    (np.zeros((1, 2, 3, 32, 32), np.float32), r"must be \[F, H, W\] or \[B, F, H, W\]"),
    (np.zeros((2, 28, 28), np.float32), "frames are 28×28 pixels but this tokenizer takes 32×32"),
    (
        np.zeros((2, 32, 32), np.uint8),
        r"must be float in \[0, 1\], got dtype uint8; divide uint8 images by 255",
    ),
    (np.zeros((2, 32, 32), np.int64), "got dtype int64; convert them to float"),
    (np.full((2, 32, 32), 255.0, np.float32), "must lie in \\[0, 1\\], got min 255 and max 255; rescale"),
    (np.full((2, 32, 32), -0.5, np.float32), "got min -0.5"),
    (np.full((2, 32, 32), np.nan, np.float32), "must lie in \\[0, 1\\].*drop NaN"),
]


@pytest.mark.parametrize(("frames", "message"), BAD_FRAMES, ids=range(len(BAD_FRAMES)))
def test_bad_frames_raise_a_helpful_error(tok, frames, message):
    with pytest.raises(TokenizerError, match=message) as info:
        tok.encode(frames)
    assert "\n" not in str(info.value), "the message must be one line"
    assert isinstance(info.value, TotoLensError) and isinstance(info.value, ValueError)


def test_tiny_overshoot_is_clipped_not_refused(kmeans, val):
    x = val[:3].copy()
    x[x == 1] = 1 + 1e-4  # resampling overshoot
    assert np.array_equal(kmeans.encode(x), kmeans.encode(np.clip(x, 0, 1)))


BAD_IDS = [
    (np.full((2, 8, 8), -1), r"ids must lie in \[0, 512\), got min -1.*subtract NUM_SPECIAL"),
    (np.full((2, 8, 8), 512), "got min 512 and max 512"),
    (np.zeros((2, 8, 8), np.float32), "ids must be integers, got dtype float32"),
    (np.zeros((2, 64), np.int64), r"ids must be \[F, 8, 8\] or \[B, F, 8, 8\].*got shape \(2, 64\)"),
    (np.zeros((2, 4, 4), np.int64), "got shape"),
]


@pytest.mark.parametrize(("ids", "message"), BAD_IDS, ids=range(len(BAD_IDS)))
def test_bad_ids_raise_a_helpful_error(kmeans, ids, message):
    with pytest.raises(TokenizerError, match=message):
        kmeans.decode(ids)


def test_bad_configurations_raise_a_helpful_error(train, random_cb):
    for vocab in (0, -3, 2.5, True):
        with pytest.raises(TokenizerError, match="vocab_size must be a positive integer"):
            PatchKMeans.fit(train[:10], vocab_size=vocab)
        with pytest.raises(TokenizerError, match="vocab_size must be a positive integer"):
            random_cb.with_vocab(vocab)
    with pytest.raises(TokenizerError, match="32×32, not a multiple of patch 5"):
        PatchKMeans.fit(train[:10], vocab_size=4, patch=5)
    with pytest.raises(TokenizerError, match="only .* distinct 4×4 patches, fewer than vocab_size=4096"):
        PatchKMeans.fit(train[:10], vocab_size=4096)
    with pytest.raises(TokenizerError, match="latent_dim 17 exceeds the 16 pixels"):
        RandomCodebook.fit(train[:10], latent_dim=17)
    with pytest.raises(TokenizerError, match="unknown tokenizer kind 'vqgan'; known kinds: external, kmeans"):
        tokenizer_from_spec({"kind": "vqgan"})
    with pytest.raises(TokenizerError, match="a tokenizer spec is a dict with a 'kind' field"):
        tokenizer_from_spec({"vocab_size": 3})


class ThresholdTokenizer(ExternalTokenizer):
    """A stand-in for a user's VQ model: 2 codes, a patch is lit (1) when its mean exceeds a threshold."""

    @property
    def vocab_size(self) -> int:
        return 2

    def _encode_frames(self, frames):
        return (patchify(frames, self.patch).mean(-1) > self.extra["threshold"]).astype(np.int64)

    def _decode_frames(self, ids):
        return np.repeat(np.repeat(ids, self.patch, axis=1), self.patch, axis=2).astype(np.float32)


def make_threshold(spec):
    return ThresholdTokenizer(spec)


def make_broken(spec):
    return SimpleNamespace(vocab_size=2)


def make_duck(spec):
    """No toto-lens base class at all: only the six names of the protocol."""
    return SimpleNamespace(vocab_size=1, grid=(1, 1), spec=spec, state_dict=dict,
                           encode=lambda f: np.zeros((len(f), 1, 1), np.int64),
                           decode=lambda i: np.zeros((len(i), 4, 4), np.float32))  # fmt: skip


@pytest.fixture
def external_spec(tmp_path):
    weights = tmp_path / "vq.ckpt"
    weights.write_bytes(b"weights the factory would read")
    return {"kind": "external", "factory": f"{__name__}:make_threshold", "path": str(weights),
            "patch": 4, "image_size": [32, 32], "threshold": 0.25, "name": "threshold-vq"}  # fmt: skip


def test_external_adapter_is_loaded_through_its_factory(external_spec, val, tmp_path):
    tok = tokenizer_from_spec(external_spec, trust_code=True)
    assert isinstance(tok, ThresholdTokenizer) and tok.vocab_size == 2 and tok.grid == (8, 8)
    ids = tok.encode(val[:5].reshape(1, 5, 32, 32))
    assert ids.shape == (1, 5, 8, 8) and set(np.unique(ids)) == {0, 1}, "the adapter's ids must pass through"
    assert tok.decode(ids).shape == (1, 5, 32, 32)
    assert {k: tok.spec[k] for k in external_spec} == external_spec, "the spec must keep the adapter's keys"
    back = load_tokenizer_dir(save_tokenizer(tok, tmp_path / "ext"), trust_code=True)
    assert isinstance(back, ThresholdTokenizer) and np.array_equal(back.encode(val[:5]), ids[0])
    with pytest.raises(TokenizerError, match="frames are 28×28 pixels"):
        tok.encode(np.zeros((1, 28, 28), np.float32))  # the base class checks inputs for adapters too


def test_a_spec_file_or_a_spec_only_folder_loads_by_path_and_names_code_only_with_trust(
    external_spec, kmeans, val, tmp_path
):
    spec_file = tmp_path / "adapter.json"
    spec_file.write_text(json.dumps(external_spec))
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "tokenizer.json").write_text(json.dumps(external_spec))  # no tokenizer.safetensors
    direct = tokenizer_from_spec(external_spec, trust_code=True).encode(val[:3])
    for where in (spec_file, folder):
        with pytest.raises(TokenizerError, match="--trust-code"):
            check_tokenizer(where)  # refused before anything is imported
        with pytest.raises(TokenizerError, match="--trust-code"):
            load_tokenizer(where)
        tok = load_tokenizer(where, trust_code=True)
        assert isinstance(tok, ThresholdTokenizer), f"{where.name} must load through the adapter's factory"
        assert np.array_equal(tok.encode(val[:3]), direct), f"{where.name} must encode as its spec does"
    with pytest.raises(TokenizerError, match="absent.json is missing"):
        load_tokenizer(tmp_path / "absent.json", trust_code=True)
    fitted = save_tokenizer(kmeans, tmp_path / "km")
    (fitted / "tokenizer.safetensors").unlink()
    with pytest.raises(TokenizerError, match="tokenizer.safetensors is missing"):
        load_tokenizer(fitted)  # a fitted tokenizer without its state is refused, never guessed


def test_external_adapter_errors_are_clear(external_spec, tmp_path):
    missing = {**external_spec, "path": str(tmp_path / "absent.ckpt")}
    with pytest.raises(TokenizerError, match="absent.ckpt does not exist; toto-lens loads tokenizer weights"):
        tokenizer_from_spec(missing, trust_code=True)
    with pytest.raises(TokenizerError, match="must read 'package.module:attr'"):
        tokenizer_from_spec({**external_spec, "factory": "no_colon_here"}, trust_code=True)
    with pytest.raises(TokenizerError, match="cannot import 'no_such_pkg_xyz.mod' \\(No module named"):
        tokenizer_from_spec({**external_spec, "factory": "no_such_pkg_xyz.mod:load"}, trust_code=True)
    with pytest.raises(TokenizerError, match="has no attribute 'nope'"):
        tokenizer_from_spec({**external_spec, "factory": f"{__name__}:nope"}, trust_code=True)
    with pytest.raises(TokenizerError, match="returned a SimpleNamespace without encode, decode, grid"):
        tokenizer_from_spec({**external_spec, "factory": f"{__name__}:make_broken"}, trust_code=True)
    with pytest.raises(TokenizerError, match="misses the field 'factory'"):
        tokenizer_from_spec({k: v for k, v in external_spec.items() if k != "factory"}, trust_code=True)
    duck = tokenizer_from_spec({"kind": "external", "factory": f"{__name__}:make_duck"}, trust_code=True)
    assert duck.encode(np.zeros((3, 4, 4))).shape == (3, 1, 1), (
        "a duck-typed tokenizer must be accepted as is"
    )


def test_register_tokenizer_plugs_in_a_new_kind(monkeypatch, val):
    monkeypatch.setattr(registry_module, "_REGISTRY", dict(registry_module._REGISTRY))  # undone after
    register_tokenizer("threshold", lambda spec, state: ThresholdTokenizer(spec))
    tok = tokenizer_from_spec({"kind": "threshold", "patch": 4, "image_size": [32, 32], "threshold": 0.5})
    assert isinstance(tok, ThresholdTokenizer) and tok.encode(val[:2]).shape == (2, 8, 8)
