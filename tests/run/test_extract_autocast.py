"""Extraction in lower precision (`--autocast bfloat16`, the GPU path, run here on the CPU): numbers
close to float32's, recorded in the store, never mixed with another precision in one store."""

import numpy as np
import pytest
from extract_helpers import make_checkpoint
from helpers import assert_usage_error, run_cli

from toto_lens.io import dict_attr
from toto_lens.run import extract
from toto_lens.store import open_cache


def test_bfloat16_autocast_stays_close_to_float32_and_is_recorded(tmp_path):
    ckpt = make_checkpoint("ac-ckpt")
    full = open_cache(path=extract(ckpt, clips=8, batch_size=4, out=tmp_path / "f32.zarr").path)
    low = open_cache(
        path=extract(ckpt, clips=8, batch_size=4, out=tmp_path / "bf16.zarr", autocast="bfloat16").path
    )
    assert dict_attr(low.attrs, "request")["autocast"] == "bfloat16", "the store must say how it was computed"
    assert "autocast" not in dict_attr(full.attrs, "request"), "float32 stores read as before the option"
    a, b = full["loss"].values[:, 1:], low["loss"].values[:, 1:]
    gap = float(np.abs(a - b).mean())
    assert 0 < gap < 0.05 * float(np.abs(a).mean()), (
        f"bf16 loss off by {gap:.4f} nats on average: not bf16, or broken"
    )
    x, y = full["acts_pooled"].values.astype(np.float64), low["acts_pooled"].values.astype(np.float64)
    for layer in range(x.shape[1]):
        r = np.corrcoef(x[:, layer].ravel(), y[:, layer].ravel())[0, 1]
        assert r > 0.99, f"layer {layer}: bf16 activations correlate {r:.4f} with float32's"


def test_a_store_is_never_continued_in_another_precision(tmp_path, capsys):
    ckpt = make_checkpoint("ac-ckpt2")
    out = str(tmp_path / "s.zarr")
    extract(ckpt, clips=8, batch_size=4, out=out, stop_after=1)
    code, _, err = run_cli(capsys, "extract", "--ckpt", ckpt, "--clips", "8", "--batch-size", "4", "--out", out,
                           "--autocast", "bfloat16")  # fmt: skip
    assert_usage_error(code, err, "autocast")
    code, _, err = run_cli(
        capsys, "extract", "--ckpt", ckpt, "--clips", "8", "--out", out, "--dtype", "bfloat16"
    )
    assert_usage_error(code, err, "--autocast bfloat16")


@pytest.mark.parametrize("value", ["int8", "bf16"])
def test_an_unknown_autocast_is_one_line(value, capsys):
    ckpt = make_checkpoint(f"ac-{value}")
    code, _, err = run_cli(capsys, "extract", "--ckpt", ckpt, "--clips", "4", "--autocast", value)
    assert_usage_error(code, err, "--autocast must be one of float32, bfloat16, float16")
