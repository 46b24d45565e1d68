"""A damaged store as a user meets it: missing, altered and truncated chunks are refused in one line that
names the array and the clips, `verify` reports them, and the repair path gives back the fresh store."""

import json
import shutil

import numpy as np
import pytest
from extract_helpers import make_checkpoint
from helpers import run_cli

from toto_lens import open_cache
from toto_lens.store import CacheError
from toto_lens.store.integrity import ChunkError
from toto_lens.store.schema import REPRODUCIBLE

CLIPS, BATCH = 12, 4  # three batches; probing needs 10 labelled clips
ARGS = ["--clips", str(CLIPS), "--batch-size", str(BATCH), "--acts", "pooled,frame", "--attn", "frame"]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, cache_root):
    """One extraction, copied by each test before it damages its copy; and the values to compare with."""
    with cache_root("integrity") as root:
        make_checkpoint("ex")
        path = tmp_path_factory.mktemp("pristine") / "ex.zarr"
        code = extract_cli(path)
        assert code == 0
        values = {k: v.values for k, v in open_cache(path=path).data_vars.items()}
        yield root, path, values


def extract_cli(path):
    from toto_lens.cli import main

    try:
        main(["extract", "--ckpt", "ex", *ARGS, "--out", str(path)])
    except SystemExit as e:
        return e.code
    return 0


@pytest.fixture
def store(pristine, tmp_path, monkeypatch):
    root, path, values = pristine
    monkeypatch.setenv("TOTO_LENS_CACHE", str(root))
    copy = tmp_path / "ex.zarr"
    shutil.copytree(path, copy)
    return copy, values


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), f"want one `error:` line, got: {err}"
    assert "Traceback" not in err and "zstd" not in err.lower()
    return lines[0]


def assert_same_values(path, values):
    ds = open_cache(path=path)
    for name, want in values.items():
        got = ds[name].values
        if got.dtype.kind == "f":  # docs/cache-schema.md: reproducible to this tolerance
            rtol, atol = REPRODUCIBLE[str(got.dtype)]
            np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=f"{name} after repair")
        else:
            np.testing.assert_array_equal(got, want, err_msg=f"{name} after repair")


def flip(file, at=5):
    data = bytearray(file.read_bytes())
    data[at] ^= 0xFF
    file.write_bytes(bytes(data))


@pytest.mark.parametrize("command", ["redundancy", "probe"])
def test_a_missing_loss_chunk_is_refused_naming_array_and_clips(store, capsys, command):
    path, values = store
    (path / "loss" / "c" / "1" / "0").unlink()  # clips 4–7: would read as NaN without a word
    with pytest.raises(CacheError, match=r"missing 1 chunk of loss \(clips 4–7\)"):
        open_cache(path=path)
    code, _, err = run_cli(
        capsys, command, "--ckpt", "ex", "--cache", str(path), "--out", str(path.parent / "r.nc")
    )
    line = one_line(err)
    assert code == 2 and "loss (clips 4–7)" in line and "toto-lens extract --ckpt ex" in line, line
    # the command the message names repairs the store: only the damaged batch is extracted again
    repair = line.split("extract them again: ")[1]
    code, out, err = run_cli(capsys, *repair.split()[1:])
    assert code == 0 and "1 batches written" in out and "2 already there" in out, out + err
    assert_same_values(path, values)


def test_a_missing_pooled_chunk_stops_probe_and_the_same_extract_restores_it(store, capsys):
    path, values = store
    (path / "acts_pooled" / "c" / "2" / "1" / "0").unlink()  # clips 8–11, layer index 1
    code, _, err = run_cli(
        capsys, "probe", "--ckpt", "ex", "--cache", str(path), "--out", str(path.parent / "p.nc")
    )
    assert code == 2 and "acts_pooled (clips 8–11)" in one_line(err)
    code, out, _ = run_cli(capsys, "verify", "--cache", str(path))
    advice = out.split("damaged: ")[1]
    assert code == 1 and "--repair" not in advice and "run: toto-lens extract" in advice, (
        "missing chunks are found again by the extract command alone: verify must say just that"
    )
    assert run_cli(capsys, "extract", "--ckpt", "ex", *ARGS, "--out", str(path))[0] == 0
    code, out, _ = run_cli(capsys, "verify", "--cache", str(path))
    assert code == 0 and "sound" in out
    assert_same_values(path, values)


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_corrupt_chunk_is_one_line_naming_it_then_verify_repairs(store, capsys, damage):
    path, values = store
    chunk = path / "loss" / "c" / "0" / "0"
    if damage == "flip":
        flip(chunk)
    else:
        chunk.write_bytes(chunk.read_bytes()[:-7])
    ds = open_cache(path=path)  # present: the listing cannot tell; the read does
    with pytest.raises(ChunkError, match=r"chunk loss/c/0/0 \(clips 0–3\) is corrupt"):
        ds.loss.mean().compute()
    code, _, err = run_cli(
        capsys, "redundancy", "--ckpt", "ex", "--cache", str(path), "--out", str(path.parent / "r.nc")
    )
    assert code == 2 and "chunk loss/c/0/0 (clips 0–3) is corrupt" in one_line(err)
    code, out, _ = run_cli(capsys, "verify", "--cache", str(path), "--json")
    report = json.loads(out)
    assert code == 1 and not report["sound"] and report["corrupt"] == 1 and report["missing"] == 0
    assert (
        report["arrays"]["loss"]["corrupt"] == ["c/0/0"] and report["arrays"]["loss"]["clips"] == "clips 0–3"
    )
    code, out, _ = run_cli(capsys, "verify", "--cache", str(path), "--repair")
    assert code == 1 and "clips 0–3 marked for extraction again" in out
    with pytest.raises(CacheError, match="unfinished"):
        open_cache(path=path)
    assert run_cli(capsys, "extract", "--ckpt", "ex", *ARGS, "--out", str(path))[0] == 0
    code, out, _ = run_cli(capsys, "verify", "--cache", str(path), "--json")
    assert code == 0 and json.loads(out)["sound"], out
    assert_same_values(path, values)


def test_verify_reports_every_array_and_names_missing_and_corrupt_chunks(store, capsys):
    path, _ = store
    code, out, _ = run_cli(capsys, "verify", "--cache", str(path), "--json")
    report = json.loads(out)
    assert code == 0 and report["sound"] and report["missing"] == report["corrupt"] == 0
    # 3 clip chunks × 3 layers; attention has no layer-0 chunks (embeddings have no attention)
    assert report["arrays"]["acts_pooled"]["chunks"] == 9 and report["arrays"]["attn_frame"]["chunks"] == 6
    (path / "acts_frame" / "c" / "0" / "2" / "0" / "0").unlink()
    flip(path / "attn_frame" / "c" / "2" / "1" / "0" / "0" / "0")
    code, out, _ = run_cli(capsys, "verify", "--cache", str(path))
    assert code == 1 and "1 missing and 1 corrupt" in out and "clips 0–3, 8–11" in out, out
    assert "acts_frame" in out and "attn_frame" in out


def test_a_store_without_checksums_says_what_cannot_be_checked(store, capsys):
    path, _ = store
    meta = json.loads((path / "zarr.json").read_text())
    meta["attributes"]["schema_version"] = 1
    (path / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(CacheError, match="cannot be detected; extract it again with --overwrite"):
        open_cache(path=path)
    code, _, err = run_cli(capsys, "verify", "--cache", str(path))
    assert code == 2 and "no chunk checksums" in one_line(err)


def test_results_record_the_identity_of_their_store(store, capsys):
    path, _ = store
    code, _, err = run_cli(
        capsys, "redundancy", "--ckpt", "ex", "--cache", str(path), "--out", str(path.parent / "r.nc")
    )
    assert code == 0, err
    import xarray as xr

    attrs = xr.open_dataset(path.parent / "r.nc").attrs
    ds = open_cache(path=path)
    assert attrs["cache"] == str(path) and attrs["cache_created"] == ds.attrs["created"]
    assert len(attrs["cache_manifest_sha256"]) == 64 and attrs["checkpoint_sha256"]
    from toto_lens.store.reader import store_identity

    assert store_identity(ds)["cache_manifest_sha256"] == attrs["cache_manifest_sha256"]
