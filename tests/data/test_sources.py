"""The user's own data: image folders, video folders and token shards, from files the tests write, with
their labels carried end to end into a store; bad files reported and skipped, bad input refused."""

import json
import os

import numpy as np
import pytest
from helpers import assert_usage_error, run_cli

from toto_lens.data import open_source, parse_source
from toto_lens.data.mix import parse_mix
from toto_lens.data.sources.files import in_hash_split
from toto_lens.data.sources.tokens import TokenShards, write_token_shards
from toto_lens.errors import ConfigError

COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220)}


@pytest.fixture
def image_folder(tmp_path):
    """Two class folders of 40×48 PNGs (a coloured square on black) and one file that is no image."""
    from PIL import Image

    root = tmp_path / "images"
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(14):
            a = np.zeros((40, 48, 3), np.uint8)
            a[8:32, 10 + i : 34 + i] = colour
            Image.fromarray(a).save(root / name / f"{i:02d}.png")
    (root / "red" / "broken.png").write_bytes(b"this is not an image")
    return root


def grey_video(path, values, size=(36, 48)):
    """A video whose frame t is flat grey at values[t] (0…255): what each sampled frame should show."""
    import imageio.v3 as iio

    frames = np.stack([np.full((*size, 3), v, np.uint8) for v in values])
    if path.suffix == ".gif":
        iio.imwrite(path, frames, duration=100, loop=0)
    else:
        iio.imwrite(path, frames, fps=10, codec="libx264", plugin="pyav")


@pytest.fixture
def video_folder(tmp_path):
    """Class folders `up` and `down` of 30-frame videos (mp4 and gif) whose brightness encodes the frame
    number, a labels.csv with a numeric and a text column, one corrupt file and one too short."""
    root = tmp_path / "videos"
    ramp = [8 * t for t in range(30)]
    for split in ("train", "val"):
        for name, values in (("up", ramp), ("down", ramp[::-1])):
            (root / split / name).mkdir(parents=True)
            for k, suffix in enumerate((".mp4", ".mp4", ".gif")):
                grey_video(root / split / name / f"{name}{k}{suffix}", values)
    (root / "train" / "up" / "corrupt.mp4").write_bytes(b"\x00" * 64)
    grey_video(root / "train" / "down" / "short.mp4", [10] * 5)
    rows = ["file,take,camera"] + [f"{n}{k}{s},{k},{'left' if k % 2 else 'right'}"
                                   for n in ("up", "down") for k, s in enumerate((".mp4", ".mp4", ".gif"))]  # fmt: skip
    (root / "train" / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def test_image_folder_gives_sequences_of_its_images_with_class_labels(image_folder, capsys):
    src = open_source(f"image-folder:{image_folder}?frames=6&size=32", split="train", n_clips=5)
    err = capsys.readouterr().err
    assert "skipped 1 of" in err and "broken.png" in err, (
        f"the file that is no image was not reported: {err!r}"
    )
    assert [s.name for s in src.label_spec] == ["label", "frame_label"]
    assert src.label_spec[0].flag_meanings == ("blue", "red"), "classes must be the sorted folder names"
    clip = src[3]
    assert clip.frames.shape == (6, 32, 32, 3) and clip.frames.dtype == np.float32 and clip.kind == "images"
    for f, file in enumerate(clip.params["files"]):
        cls = file.split("/")[0]
        assert clip.labels["frame_label"][f] == ("blue", "red").index(cls), "frame label is not its folder"
        r, g, b = clip.frames[f].reshape(-1, 3).max(0)
        assert (r > b) == (cls == "red"), f"frame {f} from {file} does not show its class's colour"
    assert clip.labels["label"] == clip.labels["frame_label"][0]
    again = open_source(f"image-folder:{image_folder}?frames=6&size=32", split="train", n_clips=5)[3]
    assert np.array_equal(clip.frames, again.frames), "clip i of (seed, split) must always be the same"
    grey = open_source(f"image-folder:{image_folder}?frames=6&size=32&mode=grey", split="train", n_clips=5)
    assert grey[3].frames.shape == (6, 32, 32) and grey[3].channels == 1


def test_folders_without_split_subfolders_split_by_a_hash_that_never_leaks(image_folder):
    files = {
        split: set(f for i in range(40) for f in open_source(f"image-folder:{image_folder}?frames=4", split, 40)[i].params["files"])
        for split in ("train", "val", "test")
    }  # fmt: skip
    assert not files["train"] & files["val"] and not files["train"] & files["test"], "a file is in two splits"
    rel = [
        p.relative_to(image_folder).as_posix() for p in image_folder.rglob("*.png") if p.name != "broken.png"
    ]
    assert sum(in_hash_split(r, "train") for r in rel) > len(rel) / 2, "most files should be for training"


def test_video_folder_samples_frames_at_the_stride_with_folder_and_csv_labels(video_folder, capsys):
    src = open_source(f"video-folder:{video_folder}?frames=5&stride=4&start=2&mode=grey", split="train")
    err = capsys.readouterr().err
    assert "corrupt.mp4" in err and "short.mp4" in err and "skipped 2 of 8" in err, err
    assert len(src) == 6, "the six good videos of the train folder are the clips"
    names = [s.name for s in src.label_spec]
    assert names == ["label", "take", "camera"], names
    assert src.label_spec[2].flag_meanings == ("left", "right")
    for i in range(len(src)):
        clip = src[i]
        file = clip.params["file"]
        cls, k = file.split("/")[-2], int(file.split("/")[-1].split(".")[0][-1])
        assert clip.frames.shape == (5, 32, 32) and clip.kind == "video"
        assert clip.labels["label"] == ("down", "up").index(cls), f"{file}: folder label"
        camera = ("left", "right").index("left" if k % 2 else "right")  # codes of the sorted values
        assert clip.labels["take"] == k and clip.labels["camera"] == camera, f"{file}: csv labels"
        t = np.array([2, 6, 10, 14, 18])
        want = (8 * t if cls == "up" else 8 * (29 - t)) / 255
        got = clip.frames.mean((1, 2))
        assert np.allclose(got, want, atol=0.03), f"{file}: frames {got * 255} are not frames {t} at stride 4"


def test_a_folder_split_and_a_video_too_short_for_the_sampling(video_folder):
    assert len(open_source(f"video-folder:{video_folder}?frames=4", split="val")) == 6
    with pytest.raises(ConfigError, match="no test/"):
        open_source(f"video-folder:{video_folder}", split="test")
    with pytest.raises(ConfigError, match="no usable video"):  # every file is shorter than 40 × 4 frames
        open_source(f"video-folder:{video_folder}?frames=40&stride=4", split="val")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("video-folder", "needs a PATH"),
        ("image-folder:{tmp}/nowhere", "does not exist"),
        ("image-folder:{tmp}?frame=3", "unknown option 'frame'"),
        ("image-folder:{tmp}?frames=x", "not a int"),
        ("moving-digits:x", "takes no argument"),
        ("webcam:0", "unknown data source 'webcam'"),
        ("image-folder:{tmp}", "no .png"),  # an empty folder
    ],
)
def test_bad_source_names_get_one_line_and_exit_2(tmp_path, capsys, name, message):
    name = name.format(tmp=tmp_path)
    code, _, err = run_cli(capsys, "data", "preview", "--data", name, "--out", str(tmp_path / "p.png"))
    assert_usage_error(code, err, message)


def test_mix_weights_after_source_options():
    mix = parse_mix("video-folder:/v?frames=8&stride=2=0.25,moving-digits=0.75")
    assert mix == {"video-folder:/v?frames=8&stride=2": 0.25, "moving-digits": 0.75}
    assert parse_mix("image-folder:/a?size=64") == {"image-folder:/a?size=64": 1.0}, "size=64 is no weight"
    assert parse_source("video-folder:/v?frames=8&stride=2").options["stride"] == 2


def _tokenizer():
    from toto_lens.tokenizers import load_tokenizer

    return load_tokenizer("random-512")


def test_token_shards_hold_the_codes_and_labels_of_their_source(tmp_path):
    tok = _tokenizer()
    source = open_source("moving-digits", split="val", n_clips=10, seed=0)
    folder = write_token_shards(source, tok, tmp_path / "shards", shard_clips=4)
    index = json.loads((folder / "index.json").read_text())
    assert [s["clips"] for s in index["shards"]] == [4, 4, 2] and index["dtype"] == "uint16"
    shards = open_source(f"tokens:{tmp_path / 'shards'}", split="val")
    assert len(shards) == 10
    for i in (0, 4, 9):
        clip, ref = shards[i], source[i]
        assert clip.frames is None and np.array_equal(clip.codes, tok.encode(ref.frames)), f"clip {i} codes"
        assert clip.kind == ref.kind
        for key, value in ref.labels.items():
            assert np.array_equal(clip.labels[key], value, equal_nan=True), f"clip {i} label {key}"


class _Interrupting:
    """A source that stops the run (as Ctrl-C would) when clip `at` is read."""

    def __init__(self, source, at):
        self.source, self.at = source, at
        self.name, self.split, self.spec, self.label_spec = (
            source.name,
            source.split,
            source.spec,
            source.label_spec,
        )

    def __len__(self):
        return len(self.source)

    def __getitem__(self, i):
        if i == self.at:
            raise KeyboardInterrupt
        return self.source[i]


def test_an_interrupted_tokenization_continues_at_the_first_missing_shard(tmp_path):
    tok = _tokenizer()
    source = open_source("moving-digits", split="val", n_clips=12, seed=0)
    with pytest.raises(KeyboardInterrupt):
        write_token_shards(_Interrupting(source, 9), tok, tmp_path / "a", shard_clips=4)
    partial = tmp_path / "a" / "val.partial"
    kept = {p.name: p.stat().st_ino for p in partial.glob("codes-*.bin")}
    assert sorted(kept) == ["codes-00000.bin", "codes-00001.bin"], "finished shards must be kept"
    assert not (tmp_path / "a" / "val").exists(), "an unfinished split must not look finished"
    write_token_shards(_Interrupting(source, 2), tok, tmp_path / "a", shard_clips=4)  # 0-7 are not reread
    write_token_shards(source, tok, tmp_path / "b", shard_clips=4)
    for name in ("codes-00000.bin", "codes-00001.bin", "codes-00002.bin", "labels.safetensors"):
        a, b = (tmp_path / d / "val" / name for d in "ab")
        assert a.read_bytes() == b.read_bytes(), f"{name} differs from an uninterrupted run"
    assert not partial.exists()


def test_shards_that_do_not_match_their_index_or_tokenizer_are_refused(tmp_path, capsys):
    tok = _tokenizer()
    folder = write_token_shards(open_source("moving-digits", "val", 6), tok, tmp_path / "s", shard_clips=4)
    shards = TokenShards(tmp_path / "s", split="val")
    from toto_lens.data.sources.tokens import check_tokenizer_match
    from toto_lens.tokenizers import load_tokenizer

    check_tokenizer_match(shards, tok)  # the tokenizer that made them: accepted
    with pytest.raises(ConfigError, match="tokenized with random-512"):
        check_tokenizer_match(shards, load_tokenizer("random-256"))
    with open(folder / "codes-00001.bin", "r+b") as f:
        f.truncate(100)
    code, _, err = run_cli(capsys, "data", "preview", "--data", f"tokens:{tmp_path / 's'}", "--split", "val",
                           "--out", str(tmp_path / "p.png"))  # fmt: skip
    assert_usage_error(code, err, "do not match")
    os.remove(folder / "codes-00001.bin")
    with pytest.raises(ConfigError, match="is missing"):
        TokenShards(tmp_path / "s", split="val")


def test_ngram_statistics_of_shards_equal_those_of_the_clips_they_hold(tmp_path):
    from toto_lens import studies

    write_token_shards(open_source("image-digits", "val", 4), _tokenizer(), tmp_path / "s")
    direct = studies.ngrams("random-512", n=(1, 2), frames=64, data="image-digits", split="val")
    shards = studies.ngrams("random-512", n=(1, 2), frames=64, data=f"tokens:{tmp_path / 's'}", split="val")
    for var in ("distinct", "entropy", "dead_codes"):
        assert np.array_equal(direct.result[var].values, shards.result[var].values), f"{var} differs"
    with pytest.raises(ConfigError, match="tokenized with random-512"):
        studies.ngrams("random-256", n=1, frames=64, data=f"tokens:{tmp_path / 's'}", split="val")
