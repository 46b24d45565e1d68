"""The store lays out whatever labels a source declares: names, dims, dtypes and class names come from
its `LabelSpec`s, nothing from the bundled digits."""

import json

import numpy as np
import pytest
from extract_helpers import make_checkpoint

from toto_lens import open_cache
from toto_lens.data import MovingDigits, materialise
from toto_lens.data.labels import LabelSpec, label_sizes
from toto_lens.errors import ConfigError
from toto_lens.run import extract

WEATHER = ("sun", "rain", "fog")


class Weather:
    """A user's own source: moving-digit frames relabelled with a weather class and a per-frame speed."""

    name, split = "weather", "val"
    label_spec = (
        LabelSpec("weather", (), "int64", WEATHER, "the sky"),
        LabelSpec("speed", ("frame",), "float32", (), "pixels per frame"),
    )

    def __init__(self, n: int) -> None:
        self.frames = MovingDigits("val", n)

    @property
    def spec(self) -> dict:
        return {"name": self.name, "split": self.split, "clips": len(self)}

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int):
        clip = self.frames[i]
        clip.labels = {"weather": np.int64(i % 3), "speed": np.full(clip.num_frames, i / 10, np.float32)}
        return clip


def test_a_sources_own_labels_reach_the_store_with_their_class_names(tmp_path):
    make_checkpoint("tiny")
    folder = materialise(Weather(6), tmp_path / "weather")  # a folder of clips with its label spec
    extract("tiny", data=str(folder), clips=6, batch_size=3, out=tmp_path / "w.zarr")
    ds = open_cache(path=tmp_path / "w.zarr")
    assert list(ds["weather"].values) == [0, 1, 2, 0, 1, 2], "labels follow their clips"
    assert ds["weather"].attrs["flag_meanings"] == "sun rain fog", "class names come from the spec"
    assert ds["speed"].dims == ("clip", "frame") and ds["speed"].dtype == np.float32
    np.testing.assert_allclose(ds["speed"].values[:, 0], np.arange(6) / 10)
    assert list(ds["kind"].values) == [0] * 6, "every store holds the clip kind"
    assert not {"digit", "motion", "object_position", "object"} & set(ds.variables), (
        "a store of another source must hold none of the bundled digits' labels"
    )
    assert json.loads(ds.attrs["dataset"])["name"] == "weather-val", "structured attributes are JSON text"


def test_a_clip_that_breaks_its_spec_is_refused():
    spec = (LabelSpec("speed", ("frame",), "float32"),)
    assert label_sizes(spec, {"speed": np.zeros(4)}) == {"frame": 4}
    with pytest.raises(ConfigError, match="lacks its source's declared label 'speed'"):
        label_sizes(spec, {})
    with pytest.raises(ConfigError, match="has shape"):
        label_sizes(spec, {"speed": np.zeros((4, 2))})
    with pytest.raises(ConfigError, match="identifier"):
        LabelSpec("two words")
