"""Bundled clips: deterministic, labels that are true, splits that never leak, a layout that inverts."""

import numpy as np
import pytest

from toto_lens.config import SMALL_CONTEXT, variants
from toto_lens.data import (
    MOTIONS,
    ClipStore,
    ImageSequences,
    Layout,
    MovingDigits,
    MovingDigitsConfig,
    load_split,
    materialise,
    open_source,
)
from toto_lens.data.digits import SPLITS, split_indices
from toto_lens.data.render import MASK_THRESHOLD, draw_digit
from toto_lens.errors import ConfigError


def clips_of(motion, n=6, n_digits=1, split="train"):
    src = MovingDigits(
        split, n_clips=n, seed=3, config=MovingDigitsConfig(n_digits=n_digits, motions=(motion,))
    )
    return [src[i] for i in range(n)]


def centroid(mask):
    rows, cols = np.nonzero(mask)
    return np.array([rows.mean() + 0.5, cols.mean() + 0.5])


def assert_same_clip(a, b):
    for key in ("frames", "masks", "digits", "centre", "velocity"):
        assert np.array_equal(getattr(a, key), getattr(b, key), equal_nan=True), f"{key} differs"
    assert a.labels.keys() == b.labels.keys(), "the clips carry different labels"
    for key in a.labels:
        assert np.array_equal(a.labels[key], b.labels[key], equal_nan=True), f"label {key} differs"
    assert (a.digit, a.motion, a.kind, a.params) == (b.digit, b.motion, b.kind, b.params)


def test_same_seed_same_clips_and_different_seeds_differ():
    a, b = MovingDigits("train", 8, seed=1), MovingDigits("train", 8, seed=1)
    for i in (0, 5, 7):
        assert_same_clip(a[i], b[i])
    assert_same_clip(a[5], MovingDigits("train", 100, seed=1)[5])  # clip i does not depend on n_clips
    c = MovingDigits("train", 8, seed=2)
    assert not all(np.array_equal(a[i].frames, c[i].frames) for i in range(8)), "seed has no effect"
    assert not np.array_equal(a[0].frames, a[1].frames), "clips of one seed should differ"


def test_clip_shapes_and_ranges():
    clip = MovingDigits("val", 4)[2]
    assert clip.frames.shape == (16, 32, 32) and clip.frames.dtype == np.float32
    assert 0.0 <= clip.frames.min() and clip.frames.max() <= 1.0 and clip.frames.max() > 0.5
    assert clip.masks.shape == (16, 32, 32) and clip.masks.dtype == np.uint8
    assert clip.centre.shape == (16, 2, 2) and clip.velocity.shape == (16, 2, 2)
    assert clip.digits.shape == (2,) and clip.digit == clip.digits[0] and 0 <= clip.motion < len(MOTIONS)
    assert clip.params["seed"] == 0 and clip.params["motion"] == MOTIONS[clip.motion]


def test_motion_is_drawn_independently_of_the_digit():
    src = MovingDigits("train", 400, seed=0)
    pairs = np.array([(src[i].digit, src[i].motion) for i in range(400)])
    assert set(pairs[:, 1]) == set(range(len(MOTIONS))), "every motion class should occur"
    # Independence: a χ²-style check would be noisy at n=400; the motion mix among two digit groups suffices.
    low, high = pairs[pairs[:, 0] < 5, 1], pairs[pairs[:, 0] >= 5, 1]
    assert (
        abs(np.bincount(low, minlength=8) / len(low) - np.bincount(high, minlength=8) / len(high)).max()
        < 0.12
    )


def test_masks_cover_exactly_the_rendered_digits():
    src = MovingDigits("train", 6, seed=4)
    for clip in (src[i] for i in range(6)):
        ink = clip.frames > MASK_THRESHOLD
        assert np.array_equal(clip.masks > 0, ink), "mask must cover every inked pixel and nothing else"
    # With one digit the mask is exactly that digit's pixels.
    for clip in clips_of("bounce", n=3):
        assert set(np.unique(clip.masks)) <= {0, 1}


def test_object_one_is_on_top():
    src = MovingDigits("train", 30, seed=0, config=MovingDigitsConfig(n_digits=2, motions=("static",)))
    images, _, ids = load_split("train")
    overlapped = 0
    for clip in (src[i] for i in range(30)):
        # Re-render each object alone from its labels: where object 1 is inked the mask must say 1.
        alone = [
            draw_digit(
                images[list(ids).index(clip.params["digit_image_ids"][k])], 32, clip.centre[0, k], 2.0, 0.0
            )
            > MASK_THRESHOLD
            for k in range(2)
        ]
        assert np.all(clip.masks[0][alone[0]] == 1), "object 1 must occlude object 2"
        assert np.array_equal(clip.masks[0] == 2, alone[1] & ~alone[0]), "object 2 shows where 1 does not"
        overlapped += int((alone[0] & alone[1]).any())
    assert overlapped > 0, "no clip had overlapping digits, so occlusion went untested"


def test_drawing_every_frame_at_once_gives_the_pixels_of_drawing_them_one_by_one():
    images, _, _ = load_split("train")
    rng = np.random.default_rng(0)
    n = 7
    centre, scale, angle = rng.uniform(8, 24, (n, 2)), rng.uniform(1.2, 2.8, n), rng.uniform(-3, 3, n)
    one_image = draw_digit(images[3], 32, centre, scale, angle)
    each_image = draw_digit(images[:n], 32, centre, scale, angle)
    assert one_image.shape == each_image.shape == (n, 32, 32)
    for f in range(n):
        assert np.array_equal(one_image[f], draw_digit(images[3], 32, centre[f], scale[f], angle[f])), f
        assert np.array_equal(each_image[f], draw_digit(images[f], 32, centre[f], scale[f], angle[f])), f
    assert draw_digit(images[3], 32, centre[0], scale[0], angle[0]).shape == (32, 32), "one frame stays 2-d"


def test_static_clips_do_not_move():
    for clip in clips_of("static"):
        assert all(np.array_equal(clip.frames[0], f) for f in clip.frames), "a static clip changed"
        assert np.all(clip.velocity == 0)


def test_translate_moves_the_mask_by_the_velocity():
    for clip in clips_of("translate"):
        v = clip.velocity[:, 0]
        assert np.allclose(v, v[0], atol=1e-4) and np.linalg.norm(v[0]) > 0.3, "translation speed is constant"
        shift = centroid(clip.masks[-1]) - centroid(clip.masks[0])
        assert np.allclose(shift, clip.centre[-1, 0] - clip.centre[0, 0], atol=1.5), "mask moved elsewhere"


def test_bounce_reverses_at_the_walls_and_stays_on_the_canvas():
    half = 8.0
    for clip in clips_of("bounce"):
        p = clip.centre[:, 0]
        assert p.min() >= half - 1e-4 and p.max() <= 32 - half + 1e-4, "the digit's box left the canvas"
        flips = np.sign(clip.velocity[1:, 0]) != np.sign(clip.velocity[:-1, 0])
        assert flips.any(), "a bounce clip must hit a wall"


@pytest.mark.parametrize("motion", ["rotate_cw", "rotate_ccw"])
def test_rotating_clips_keep_their_centre(motion):
    for clip in clips_of(motion):
        assert np.all(clip.centre == clip.centre[0]), "a rotating digit's centre moved"
        assert not np.array_equal(clip.frames[0], clip.frames[3]), "nothing rotated"
        # The ink stays around the centre: its centroid orbits at a near-constant radius.
        radii = [np.linalg.norm(centroid(m) - clip.centre[0, 0]) for m in clip.masks]
        assert max(radii) - min(radii) < 2.0


def test_rotation_direction():
    # Angles grow for counter-clockwise clips and shrink for clockwise ones.
    cw = clips_of("rotate_cw", n=2)[0].params["objects"][0]["angular_speed_deg"]
    ccw = clips_of("rotate_ccw", n=2)[0].params["objects"][0]["angular_speed_deg"]
    assert cw < 0 < ccw


@pytest.mark.parametrize("motion, grows", [("zoom_in", True), ("zoom_out", False)])
def test_zoom_changes_the_size(motion, grows):
    for clip in clips_of(motion):
        first, last = (clip.masks[0] > 0).sum(), (clip.masks[-1] > 0).sum()
        assert (last > 2 * first) if grows else (first > 2 * last), f"{motion}: area {first} → {last}"
        assert np.all(clip.centre == clip.centre[0])


def test_oscillation_goes_back_and_forth():
    for clip in clips_of("oscillate"):
        v = clip.velocity[:, 0]
        along = v @ v[0] / max(np.linalg.norm(v[0]), 1e-6)
        assert (along < 0).any() and (along > 0).any(), "an oscillating digit must reverse"


def test_splits_are_disjoint_and_val_test_digits_are_unseen():
    parts = [set(split_indices(s).tolist()) for s in SPLITS]
    assert sum(len(p) for p in parts) == 1797 and len(set.union(*parts)) == 1797
    train = parts[0]
    for split in ("val", "test"):
        src = MovingDigits(split, 20)
        used = {i for k in range(20) for i in src[k].params["digit_image_ids"]}
        assert not used & train, f"{split} clips show training digits"


def test_image_sequences_are_independent_images_with_labels_per_image():
    src = ImageSequences("train", 4, seed=0)
    clip = src[1]
    assert clip.kind == "images" and clip.motion == -1 and clip.digits.shape == (16,)
    assert len(set(clip.params["digit_image_ids"])) > 8, "images of a sequence should be independent draws"
    assert all((m > 0).any() for m in clip.masks)
    _, labels, ids = load_split("train")
    by_id = dict(zip(ids.tolist(), labels.tolist(), strict=True))
    assert [by_id[i] for i in clip.params["digit_image_ids"]] == clip.digits.tolist()


def test_materialised_clips_equal_generated_ones(tmp_path):
    src = MovingDigits("test", 5, seed=9)
    path = materialise(src, tmp_path / "clips")
    store = open_source(path)
    assert isinstance(store, ClipStore) and len(store) == 5 and store.split == "test"
    for i in range(5):
        assert_same_clip(store[i], src[i])
    with pytest.raises(ConfigError, match="already exists"):
        materialise(src, path)
    images = materialise(ImageSequences("val", 2), tmp_path / "img")
    assert_same_clip(ClipStore(images)[1], ImageSequences("val", 2)[1])


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: MovingDigits("training"), "unknown split"),
        (lambda: MovingDigits("train", 0), "n_clips must be positive"),
        (lambda: MovingDigitsConfig(motions=("spin",)), "unknown motion"),
        (lambda: open_source("kinetics"), "unknown data 'kinetics'"),
    ],
)
def test_bad_data_arguments(call, words):
    with pytest.raises(ConfigError, match=words):
        call()


def test_index_out_of_range():
    with pytest.raises(IndexError, match="out of range"):
        MovingDigits("train", 3)[3]


# --- token layout -------------------------------------------------------------------------------


def test_layout_maps_positions_both_ways():
    layout = Layout(frames=3, rows=2, cols=4)
    assert layout.length == 3 * 8 + 2
    assert layout.locate(0) == (-1, -1, -1) and layout.locate(layout.length - 1) == (-1, -1, -1)
    seen = set()
    for f in range(3):
        for r in range(2):
            for c in range(4):
                p = layout.position(f, r, c)
                assert layout.locate(p) == (f, r, c)
                seen.add(p)
    assert seen == set(range(1, layout.length - 1))
    assert layout.frame_slice(1) == slice(9, 17)
    assert layout.visual.sum() == 24 and not layout.visual[0] and not layout.visual[-1]


def test_pack_and_unpack():
    layout = Layout(frames=2, rows=2, cols=2)
    codes = np.arange(16).reshape(2, 2, 2, 2)  # a batch of two clips
    video = layout.pack(codes, "video")
    assert video.shape == (2, 10) and (video[:, 0] == 1).all() and (video[:, -1] == 2).all()
    assert video[0, 1:-1].tolist() == [c + 4 for c in range(8)], "codes follow in raster order, offset by 4"
    assert layout.pack(codes[0], "images")[0] == 3
    assert np.array_equal(layout.unpack(video), codes)
    assert layout.kind_of(layout.pack(codes[0], "images")) == "images"
    with pytest.raises(ConfigError, match="do not fit"):
        layout.pack(np.zeros((3, 2, 2), dtype=int))
    with pytest.raises(ConfigError, match="special token"):
        layout.unpack(np.ones(10, dtype=int))


def test_bundled_layout_fits_the_small_models():
    layout = Layout(frames=16, rows=8, cols=8)
    assert layout.length == SMALL_CONTEXT == variants()["toto-tiny"].context_length


def test_bundled_digits_are_scikit_learns_read_without_importing_it():
    """`read_digits` parses scikit-learn's digits.csv.gz with numpy; it must give exactly what
    `load_digits()` gives, and the data package must not import scikit-learn to get it."""
    import subprocess
    import sys

    from sklearn.datasets import load_digits

    from toto_lens.data.digits import read_digits

    images, targets = read_digits()
    ref = load_digits()
    assert images.dtype == ref.images.dtype and images.shape == ref.images.shape == (1797, 8, 8), (
        f"images are {images.dtype} {images.shape}, load_digits gives {ref.images.dtype} {ref.images.shape}"
    )
    assert np.array_equal(images, ref.images), "pixel values differ from load_digits().images"
    assert targets.dtype == ref.target.dtype and np.array_equal(targets, ref.target), (
        "labels differ from load_digits().target"
    )
    code = (
        "import sys\nfrom toto_lens.data import open_source\nopen_source('moving-digits', 'val', 2)[1]\n"
        "print('sklearn' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", f"rendering a clip imported scikit-learn: {done.stderr[-500:]}"
