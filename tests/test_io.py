"""Atomic writes: a failure leaves the old content and no temporary files; reads fail with one line."""

import os
import stat

import pytest

from toto_lens.errors import TotoLensError
from toto_lens.io import atomic_file, atomic_folder, read_json, read_safetensors


def test_atomic_folder_replaces_only_when_complete(tmp_path):
    target = tmp_path / "thing"
    with atomic_folder(target) as tmp:
        (tmp / "a.txt").write_text("one")
    assert (target / "a.txt").read_text() == "one"
    with pytest.raises(RuntimeError), atomic_folder(target, overwrite=True) as tmp:
        (tmp / "a.txt").write_text("two")
        raise RuntimeError("crash while writing")
    assert (target / "a.txt").read_text() == "one", "a failed overwrite must keep the old folder"
    with atomic_folder(target, overwrite=True) as tmp:
        (tmp / "b.txt").write_text("three")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"], "overwrite replaces the whole folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thing"], "temporary folders left behind"


def test_atomic_folder_refuses_existing(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(TotoLensError, match="already exists"), atomic_folder(tmp_path / "x"):
        pass


def test_atomic_file_keeps_old_content_on_failure_and_normal_permissions(tmp_path):
    target = tmp_path / "fig.html"
    with atomic_file(target) as tmp:
        tmp.write_text("old")
    with pytest.raises(ValueError), atomic_file(target) as tmp:
        tmp.write_text("half")
        raise ValueError
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["fig.html"]
    mode = stat.S_IMODE(os.stat(target).st_mode)
    assert mode & 0o044, f"figure written with mode {oct(mode)}: others cannot read it"


def test_reads_name_the_file(tmp_path):
    bad = tmp_path / "c.json"
    bad.write_text("[1, 2]")
    with pytest.raises(TotoLensError, match="c.json must hold a JSON object; redo it"):
        read_json(bad, redo="redo it")
    bad.write_text("{")
    with pytest.raises(TotoLensError, match="c.json is not valid JSON"):
        read_json(bad, redo="redo it")
    (tmp_path / "w.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    with pytest.raises(TotoLensError, match="w.safetensors is truncated or corrupted"):
        read_safetensors(tmp_path / "w.safetensors", redo="redo it")
    with pytest.raises(TotoLensError, match="nothing.json is missing"):
        read_json(tmp_path / "nothing.json", redo="redo it")


def test_attributes_read_back_whether_stored_as_json_text_or_as_they_are():
    from toto_lens.io import dict_attr, json_attr

    netcdf = {"grid": "[0.1, 1.0]", "ckpt": '{"name": "demo"}', "plain": "demo"}
    zarr = {"grid": [0.1, 1.0], "ckpt": {"name": "demo"}}
    assert json_attr(netcdf, "grid") == json_attr(zarr, "grid") == [0.1, 1.0], "a list is a list either way"
    assert dict_attr(netcdf, "ckpt") == dict_attr(zarr, "ckpt") == {"name": "demo"}
    assert json_attr(netcdf, "plain", "fallback") == "fallback", "text that is not JSON gives the default"
    assert dict_attr(netcdf, "plain") == {"name": "demo"} and dict_attr(zarr, "missing") == {}
