"""The store as an xarray user reads it: labels by name, layers from the end, no empty dimensions, and
subsets that write to netCDF as they are."""

import numpy as np
import pytest
import xarray as xr
from extract_helpers import make_checkpoint

from toto_lens import open_cache
from toto_lens.data import open_source
from toto_lens.data.moving import MOTIONS
from toto_lens.run import extract


@pytest.fixture
def store(tmp_path):
    make_checkpoint("ex")
    path = tmp_path / "s.zarr"
    extract("ex", clips=8, batch_size=4, out=path, layers="0,2", dtype="float32")
    return path


def test_layer_minus_one_is_the_last_block_as_on_the_command_line(store):
    ds = open_cache(path=store)
    assert list(ds.layer.values) == [0, 2]
    last = ds.toto.sel(layer=-1)
    assert int(last.layer) == 2 and last.acts_pooled.dims == ("clip", "feature")
    xr.testing.assert_identical(ds.acts_pooled.toto.sel(layer=-1), ds.acts_pooled.sel(layer=2))
    with pytest.raises(KeyError):
        ds.toto.sel(layer=-2)  # layer 1 exists in the model but was not extracted


def test_labels_select_by_name_and_decode_to_strings(store):
    ds = open_cache(path=store)
    source = open_source("moving-digits", split="val", n_clips=8, seed=0)
    motions = [MOTIONS[source[i].motion] for i in range(8)]
    name = motions[0]
    picked = ds.toto.sel(motion=name, layer=-1)
    assert list(picked["clip"].values) == [i for i, m in enumerate(motions) if m == name]
    assert picked.acts_pooled.dims == ("clip", "feature")
    both = ds.toto.sel(motion=[motions[0], motions[1]])
    assert set(both["clip"].values) == {i for i, m in enumerate(motions) if m in motions[:2]}
    assert ds.toto.sel(kind="video").sizes["clip"] == 8 and ds.toto.sel(kind="images").sizes["clip"] == 0
    decoded = ds.toto.decode()
    assert list(decoded.motion.values) == motions and list(decoded.kind.values) == ["video"] * 8
    assert ds.toto.meanings("kind") == {0: "video", 1: "images"}
    with pytest.raises(KeyError, match="'sideways' is not a value of 'motion'"):
        ds.toto.sel(motion="sideways")


def test_a_store_without_attention_has_no_attention_dimensions(store):
    ds = open_cache(path=store)
    empty = {"head", "qframe", "kframe", "qpos", "kpos"} & (set(ds.dims) | set(ds.coords))
    assert not empty, f"dimensions no array uses: {empty}"
    plain = xr.open_zarr(store, consolidated=False)
    assert not {"head", "qpos"} & set(plain.dims)


def test_a_subset_writes_to_netcdf_and_reads_back(store, tmp_path):
    from toto_lens.io import dict_attr

    ds = open_cache(path=store)
    ds[["loss"]].to_netcdf(tmp_path / "loss.nc")
    ds.toto.decode()[["acts_pooled"]].to_netcdf(tmp_path / "pooled.nc")
    back = xr.open_dataset(tmp_path / "loss.nc")
    np.testing.assert_array_equal(back.loss.values, ds.loss.values)
    assert dict_attr(back.attrs, "checkpoint")["name"] == "ex", "structured attributes survive as JSON"
    assert back.motion.attrs["flag_meanings"] == ds.motion.attrs["flag_meanings"]


def test_the_readme_per_frame_loss_is_a_mean_per_frame(store):
    ds = open_cache(path=store)
    per_frame = ds.loss.groupby("pos_frame").mean(...)  # as in the README
    assert per_frame.dims == ("pos_frame",) and list(per_frame.pos_frame.values) == list(range(-1, 16))
    frame3 = ds.loss.values[:, ds.pos_frame.values == 3].mean()
    assert abs(float(per_frame.sel(pos_frame=3)) - frame3) < 1e-5
