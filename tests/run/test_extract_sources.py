"""Extraction from the user's sources: a folder's labels become the store's labelled coordinates, and
token shards give the very store that tokenizing the clips on the fly gives."""

import numpy as np
import pytest
from extract_helpers import TOKENIZER, make_checkpoint

from toto_lens.data import open_source
from toto_lens.data.sources.tokens import write_token_shards
from toto_lens.errors import ConfigError
from toto_lens.run import extract
from toto_lens.store import open_cache
from toto_lens.tokenizers import load_tokenizer


@pytest.fixture
def image_folder(tmp_path):
    """Three class folders of grey-ish PNGs of different sizes (resized and cropped by the source)."""
    from PIL import Image

    root = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for c, name in enumerate(("cat", "dog", "sea lion")):
        (root / name).mkdir(parents=True)
        for i in range(8):
            size = (40 + 4 * c, 36 + 2 * i)
            Image.fromarray(rng.integers(0, 60 + 80 * c, size=size, dtype=np.uint8)).save(
                root / name / f"{i}.png"
            )
    return root


def test_folder_labels_are_written_as_labelled_coordinates(tmp_path, image_folder):
    ckpt = make_checkpoint("folder-ckpt")
    data = f"image-folder:{image_folder}?mode=grey&frames=16"
    result = extract(ckpt, data=data, split="train", clips=6, batch_size=4, out=tmp_path / "s.zarr")
    ds = open_cache(path=result.path)
    assert "masks" not in ds, "a source without object masks must not get an empty masks array"
    assert ds["label"].attrs["flag_meanings"] == "cat dog sea_lion", "class names are the flag meanings"
    source = open_source(data, split="train", n_clips=6)
    for i in range(6):
        clip = source[i]
        names = [f.split("/")[0] for f in clip.params["files"]]
        want = [("cat", "dog", "sea lion").index(n) for n in names]
        assert list(ds["frame_label"].values[i]) == want, (
            f"clip {i}: frame labels are not the images' folders"
        )
        assert int(ds["label"].values[i]) == want[0] and int(ds["kind"].values[i]) == 1  # an image sequence
    assert int(ds["tokens"].values[0, 0]) == 3, "image sequences start with token [3]"


def test_token_shards_extract_to_the_same_store_as_the_clips_they_hold(tmp_path):
    ckpt = make_checkpoint("shard-ckpt")
    source = open_source("moving-digits", split="val", n_clips=8, seed=0)
    write_token_shards(source, load_tokenizer(TOKENIZER), tmp_path / "shards", shard_clips=3)
    a = extract(ckpt, data="moving-digits", clips=8, batch_size=4, out=tmp_path / "a.zarr")
    b = extract(ckpt, data=f"tokens:{tmp_path / 'shards'}", clips=8, batch_size=4, out=tmp_path / "b.zarr")
    da, db = open_cache(path=a.path), open_cache(path=b.path)
    for var in ("tokens", "loss", "acts_pooled", "acts_frame"):
        assert np.array_equal(da[var].values, db[var].values, equal_nan=True), f"{var} differs"
    for label in ("digit", "motion", "frame_digit", "object_position"):
        assert np.array_equal(da[label].values, db[label].values, equal_nan=True), f"label {label} differs"


def test_shards_of_another_tokenizer_are_refused_before_anything_runs(tmp_path):
    ckpt = make_checkpoint("other-ckpt")
    source = open_source("moving-digits", split="val", n_clips=4, seed=0)
    write_token_shards(source, load_tokenizer("random-512"), tmp_path / "shards")
    with pytest.raises(ConfigError, match="tokenized with random-512"):
        extract(ckpt, data=f"tokens:{tmp_path / 'shards'}", clips=4, out=tmp_path / "c.zarr")
    assert not (tmp_path / "c.zarr").exists(), "nothing is written for shards the model cannot read"
