"""Frames with channels (RGB): patches carry patch²·C values, k-means and the random codebook fit and code
colour, specs keep `channels` (older specs without it are grey), grey frames may carry a trailing axis of
1, and frames with other channels than the tokenizer's are refused in one line naming both counts.

Frames are small synthetic RGB scenes: two coloured rectangles on black. The six colours are red, green,
blue (grey value 1/3 each, as the channel mean) and yellow, cyan, magenta (2/3 each), so a tokenizer that
averaged its channels away could not tell them apart.
"""

import json

import numpy as np
import pytest

from toto_lens.tokenizers import (
    ExternalTokenizer,
    PatchKMeans,
    RandomCodebook,
    TokenizerError,
    channels_of,
    load_tokenizer_dir,
    patchify,
    save_tokenizer,
    tokenizer_from_spec,
    unpatchify,
)
from toto_lens.tokenizers.base import fit_channels
from toto_lens.tokenizers.named import tokenizer_report

COLOURS = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 0, 1]], np.float32)
SIZE = 16


def colour_frames(n: int, seed: int) -> np.ndarray:
    """[n, 16, 16, 3] float32 in [0, 1]: two rectangles (4-8 pixels a side) of the six colours on black."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, SIZE, SIZE, 3), np.float32)
    for frame in out:
        for _ in range(2):
            h, w = rng.integers(4, 9, 2)
            y, x = rng.integers(0, SIZE - h + 1), rng.integers(0, SIZE - w + 1)
            frame[y : y + h, x : x + w] = COLOURS[rng.integers(len(COLOURS))]
    return out


def solid(colours: np.ndarray) -> np.ndarray:
    """One frame filled with each colour: [len(colours), 16, 16, 3]."""
    return np.ascontiguousarray(np.broadcast_to(colours[:, None, None, :], (len(colours), SIZE, SIZE, 3)))


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) - b) ** 2))


@pytest.fixture(scope="module")
def train() -> np.ndarray:
    return colour_frames(200, seed=0)


@pytest.fixture(scope="module")
def val() -> np.ndarray:
    return colour_frames(100, seed=1)


@pytest.fixture(scope="module")
def rgb_kmeans(train) -> PatchKMeans:
    return PatchKMeans.fit(train, vocab_size=128, patch=4, seed=0)


@pytest.fixture(scope="module")
def rgb_random(train) -> RandomCodebook:
    return RandomCodebook.fit(train, vocab_size=512, patch=4, latent_dim=4, seed=0)


@pytest.fixture(params=["rgb_kmeans", "rgb_random"])
def rgb(request):
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="module")
def grey_kmeans(train) -> PatchKMeans:
    return PatchKMeans.fit(train.mean(-1), vocab_size=32, patch=4, seed=0)


def test_patchify_puts_channels_innermost_and_unpatchify_inverts_it():
    x = np.arange(2 * 8 * 12 * 3, dtype=np.float32).reshape(2, 8, 12, 3)
    p = patchify(x, 4)
    assert p.shape == (2, 2, 3, 48), f"8×12×3 frames in 4×4 patches must give [2, 2, 3, 48], got {p.shape}"
    assert np.array_equal(p[0, 1, 2].reshape(4, 4, 3), x[0, 4:8, 8:12]), (
        "patch (1, 2) must hold that block's pixels in raster order with the channels innermost"
    )
    assert np.array_equal(unpatchify(p, 4, channels=3), x), "unpatchify(channels=3) must invert patchify"
    grey = x[..., 0]
    assert np.array_equal(patchify(grey, 4), patchify(grey[..., None], 4)), (
        "a grey [N, H, W] stack must patchify as [N, H, W, 1]"
    )
    assert unpatchify(patchify(grey, 4), 4).shape == (2, 8, 12), "grey unpatchify must give [N, H, W] back"
    with pytest.raises(TokenizerError, match="48 values do not fit 4×4 patches of 1 channel"):
        unpatchify(p, 4)


def test_rgb_tokenizers_have_colour_patches_and_reconstruct_held_out_frames(rgb, val, train):
    assert rgb.channels == 3 and rgb.spec["channels"] == 3, "fitting on [N, H, W, 3] must give channels 3"
    assert rgb.mean.shape == (48,), f"the patch mean must have 4·4·3 = 48 values, got {rgb.mean.shape}"
    ids = rgb.encode(val)
    assert ids.shape == (100, 4, 4) and ids.dtype == np.int64, "16×16×3 frames at patch 4 give ids [F, 4, 4]"
    rec = rgb.decode(ids)
    assert rec.shape == val.shape and rec.dtype == np.float32, (
        f"decode must give [F, H, W, 3], got {rec.shape}"
    )
    clips = val[:12].reshape(3, 4, SIZE, SIZE, 3)
    assert np.array_equal(rgb.encode(clips), ids[:12].reshape(3, 4, 4, 4)), "[B, F, H, W, 3] must batch"
    assert rgb.decode(ids[:12].reshape(3, 4, 4, 4)).shape == clips.shape, "decode must keep [B, F] and C"
    # The trivial baseline decodes every patch to the mean training patch: measured 0.115 here. Measured
    # MSE: 0.014 for k-means with 128 codes, 0.048 for 512 random codes over a 4-d latent (much coarser).
    baseline = mse(patchify(val, 4).reshape(-1, 48), patchify(train, 4).reshape(-1, 48).mean(0)[None])
    err, bound = mse(rec, val), {"kmeans": 0.025, "random_codebook": 0.07}[rgb.kind]
    assert err < bound, f"{rgb.name}: RGB reconstruction MSE {err:.4f} should stay under {bound}"
    assert err < baseline / 1.6, (
        f"{rgb.name}: MSE {err:.4f} does not beat the mean-patch baseline {baseline:.4f}"
    )
    report = tokenizer_report(rgb, val)
    assert report["mse"] == pytest.approx(err, rel=1e-5), (
        "tokenizer_report must measure RGB frames as they are"
    )


def test_colours_of_equal_grey_get_distinct_codes_and_decode_to_their_colour(rgb, grey_kmeans):
    frames = solid(COLOURS)  # red, green, blue (grey 1/3), yellow, cyan, magenta (grey 2/3)
    codes = rgb.encode(frames)[:, 0, 0]
    for same_grey in (codes[:3], codes[3:]):
        assert len(set(same_grey.tolist())) == 3, (
            f"{rgb.name}: colours of one grey value got codes {same_grey.tolist()}: the channels were "
            "averaged away (or lost) on the way to the codes"
        )
    decoded = rgb.decode(rgb.encode(frames))[:, SIZE // 2, SIZE // 2]  # (6, 3) the centre pixel's colour
    nearest = np.argmin(((decoded[:, None] - COLOURS[None]) ** 2).sum(-1), axis=1)
    assert np.array_equal(nearest, np.arange(6)), (
        f"{rgb.name}: decoded colours {decoded.round(2).tolist()} are not nearest to the colours encoded"
    )
    # The control: a grey tokenizer sees one frame thrice, so the distinction above comes from colour.
    grey_codes = grey_kmeans.encode(frames.mean(-1))[:, 0, 0]
    assert len(set(grey_codes[:3].tolist())) == 1, (
        "the test's premise failed: red, green, blue differ in grey"
    )


def test_spec_and_state_round_trip_keeps_channels(rgb, val, tmp_path):
    back = tokenizer_from_spec(rgb.spec, rgb.state_dict())
    assert back.channels == 3 and back.spec == rgb.spec, "tokenizer_from_spec must rebuild channels 3"
    folder = save_tokenizer(rgb, tmp_path / "rgb")
    assert json.loads((folder / "tokenizer.json").read_text())["channels"] == 3, (
        "the saved spec lacks channels"
    )
    loaded = load_tokenizer_dir(folder)
    assert loaded.channels == 3 and channels_of(loaded) == 3, "a saved RGB tokenizer must load as RGB"
    ids = rgb.encode(val[:10])
    assert np.array_equal(loaded.encode(val[:10]), ids), "the reloaded RGB tokenizer encodes differently"
    assert np.array_equal(loaded.decode(ids), rgb.decode(ids)), (
        "the reloaded RGB tokenizer decodes differently"
    )
    if isinstance(rgb, RandomCodebook):
        big = rgb.with_vocab(2048)
        assert big.channels == 3 and big.decode(big.encode(val[:2])).shape == (2, SIZE, SIZE, 3), (
            "with_vocab must keep the channels"
        )


def test_old_specs_without_channels_load_as_grey(grey_kmeans, train, rgb_kmeans):
    grey_random = RandomCodebook.fit(train.mean(-1), vocab_size=64, patch=4, seed=0)
    frames = train[:5].mean(-1)
    for tok in (grey_kmeans, grey_random):
        assert tok.spec["channels"] == 1, f"{tok.name}: a grey fit's spec must say channels 1"
        old = {k: v for k, v in tok.spec.items() if k != "channels"}
        back = tokenizer_from_spec(old, tok.state_dict())
        assert back.channels == 1 and back.spec == tok.spec, (
            f"{tok.name}: a spec without channels must be grey"
        )
        assert np.array_equal(back.encode(frames), tok.encode(frames)), f"{tok.name}: old spec, other ids"
    old_rgb = {k: v for k, v in rgb_kmeans.spec.items() if k != "channels"}
    with pytest.raises(
        TokenizerError, match=r"'codebook' has shape \[128, 48\] but the spec implies \[128, 16\]"
    ):
        tokenizer_from_spec(old_rgb, rgb_kmeans.state_dict())  # channels decide the state's shapes
    assert channels_of(object()) == 1, "a duck-typed tokenizer without channels must count as grey"


def test_grey_with_a_trailing_axis_of_one_equals_grey_without_it(grey_kmeans, train):
    grey = train[:8].mean(-1)  # (8, 16, 16)
    ids = grey_kmeans.encode(grey)
    assert np.array_equal(grey_kmeans.encode(grey[..., None]), ids), "[F, H, W, 1] must encode as [F, H, W]"
    clips = grey.reshape(2, 4, SIZE, SIZE)
    assert np.array_equal(grey_kmeans.encode(clips[..., None]), ids.reshape(2, 4, 4, 4)), (
        "[B, F, H, W, 1] must encode as [B, F, H, W]"
    )
    assert grey_kmeans.decode(ids).shape == (8, SIZE, SIZE), "a grey tokenizer must still decode to [F, H, W]"
    again = PatchKMeans.fit(train.mean(-1)[..., None], vocab_size=32, patch=4, seed=0)
    assert again.channels == 1 and np.array_equal(again.codebook, grey_kmeans.codebook), (
        "fitting on [N, H, W, 1] must give the same grey tokenizer as [N, H, W]"
    )
    as_clips = PatchKMeans.fit(train.mean(-1).reshape(20, 10, SIZE, SIZE), vocab_size=32, seed=0, channels=1)
    assert np.array_equal(as_clips.codebook, grey_kmeans.codebook), (
        "grey clips [B, F, H, W] must fit as frames"
    )


def test_fit_channels_reads_the_shape_only_where_it_is_unambiguous():
    cases = [((10, 32, 32), None, 1), ((10, 32, 32, 3), None, 3), ((10, 32, 32, 1), None, 1),
             ((2, 5, 32, 32), None, 1), ((2, 5, 32, 32, 3), None, 3), ((2, 5, 32, 4), 1, 1)]  # fmt: skip
    for shape, given, want in cases:
        got = fit_channels(np.zeros(shape, np.float32), given)
        assert got == want, f"frames {shape} with channels={given} must read as {want} channel(s), got {got}"


def test_a_channel_mismatch_is_one_line_naming_both_counts(grey_kmeans, rgb_kmeans, val):
    grey = val.mean(-1)
    rgba = np.concatenate([val, np.ones_like(val[..., :1])], -1)
    rgb_to_grey = "frames have 3 channels (RGB) but this tokenizer takes 1 (grey)"
    grey_to_rgb = "frames have 1 channel (grey) but this tokenizer takes 3 (RGB)"
    fix_grey = "; fit a tokenizer on RGB frames (channels=3) or convert the frames to grey"
    fix_rgb = "; fit a tokenizer on grey frames (channels=1) or pass frames [F, H, W, 3] (channels last)"
    cases = [
        (grey_kmeans, val, rgb_to_grey + fix_grey),
        (grey_kmeans, val.reshape(10, 10, SIZE, SIZE, 3), rgb_to_grey),
        (rgb_kmeans, grey, grey_to_rgb + fix_rgb),
        (rgb_kmeans, grey.reshape(10, 10, SIZE, SIZE), grey_to_rgb),
        (rgb_kmeans, grey[..., None], grey_to_rgb),
        (rgb_kmeans, rgba, "frames have 4 channels (RGBA) but this tokenizer takes 3 (RGB)"),
        (rgb_kmeans, val[0], "must be [F, H, W, 3] or [B, F, H, W, 3], got shape (16, 16, 3); add a frame"),
    ]
    for tok, frames, message in cases:
        with pytest.raises(TokenizerError) as info:
            tok.encode(frames)
        text = str(info.value)
        assert "\n" not in text, f"the error must be one line: {text!r}"
        assert message in text, (
            f"frames {frames.shape} to a {tok.channels}-channel tokenizer: expected {message!r}, got {text!r}"
        )
    with pytest.raises(TokenizerError, match="pass channels=3"):
        PatchKMeans.fit(val, vocab_size=8, channels=1)  # an RGB array said to be grey clips
    with pytest.raises(TokenizerError, match="latent_dim 49 exceeds the 48 values"):
        RandomCodebook.fit(val, latent_dim=49)


class MeanColourTokenizer(ExternalTokenizer):
    """A stand-in for a user's RGB VQ model: the code of a patch is its dominant channel (0, 1, 2)."""

    @property
    def vocab_size(self) -> int:
        return 3

    def _encode_frames(self, frames):
        assert frames.ndim == 4 and frames.shape[-1] == 3, (
            f"the adapter must see [N, H, W, 3], got {frames.shape}"
        )
        return patchify(frames, self.patch).reshape(*frames.shape[:1], *self.grid, -1, 3).mean(-2).argmax(-1)

    def _decode_frames(self, ids):
        colours = np.eye(3, dtype=np.float32)[ids]  # (N, rows, cols, 3)
        return np.repeat(np.repeat(colours, self.patch, axis=1), self.patch, axis=2)  # (N, H, W, 3)


def test_external_adapters_take_channels_from_the_spec():
    spec = {"kind": "mean-colour", "patch": 4, "image_size": [SIZE, SIZE], "channels": 3, "name": "mc"}
    tok = MeanColourTokenizer(spec)
    assert tok.channels == 3 and tok.spec["channels"] == 3, "an external spec's channels must be kept"
    assert "channels" not in tok.extra, "channels is a base key, not an extra one"
    frames = solid(COLOURS[:3])
    ids = tok.encode(frames)
    assert np.array_equal(ids[:, 0, 0], [0, 1, 2]), (
        f"the adapter must get RGB frames as given: {ids[:, 0, 0]}"
    )
    assert np.array_equal(tok.decode(ids), frames), (
        "the adapter's [N, H, W, 3] must come back as [F, H, W, 3]"
    )
    grey = MeanColourTokenizer({k: v for k, v in spec.items() if k != "channels"})
    assert grey.channels == 1, "an external spec without channels must be grey"
    with pytest.raises(TokenizerError, match="frames have 3 channels"):
        grey.encode(frames)


class GreyDecoder(MeanColourTokenizer):
    """An RGB adapter that forgot its channels when decoding: [N, H, W] instead of [N, H, W, 3]."""

    def _decode_frames(self, ids):
        return super()._decode_frames(ids).mean(-1)


def test_an_adapter_decoding_the_wrong_channels_is_told_the_shape_it_owes():
    tok = GreyDecoder({"kind": "grey-decoder", "patch": 4, "image_size": [SIZE, SIZE], "channels": 3})
    with pytest.raises(
        TokenizerError, match=r"_decode_frames gave shape \(2, 16, 16\).*must give \[N, 16, 16, 3\]"
    ):
        tok.decode(np.zeros((2, 4, 4), np.int64))
