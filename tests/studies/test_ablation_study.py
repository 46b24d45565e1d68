"""`run.ablation`, `studies.ablate` and `toto-lens ablate`: head ablation on a real checkpoint's clips."""

import json

import numpy as np
import pytest
import torch
import xarray as xr
from extract_helpers import make_checkpoint
from helpers import assert_usage_error, run_cli

from toto_lens import load_checkpoint, open_cache, studies
from toto_lens.run.ablation import ablated, head_means, token_losses
from toto_lens.studies.base import StudyError


@pytest.fixture
def abl_store():
    """A real (randomly initialised) checkpoint and its default store: 6 validation clips of moving digits."""
    from toto_lens.run import extract

    make_checkpoint("abl")
    extract("abl", clips=6, batch_size=6, acts=("pooled",))
    return open_cache("abl").encoding["source"]


def _ids(n=3):
    return open_cache("abl")["tokens"].values[:n].astype(np.int64)


def test_ablating_no_heads_reproduces_the_intact_loss_exactly(abl_store):
    net = load_checkpoint("abl").model.eval()
    ids = _ids()
    intact = token_losses(net, ids)
    with ablated(net, [], "zero"):
        np.testing.assert_array_equal(token_losses(net, ids), intact)
    r = studies.ablate("abl", heads="", clips=3, random_draws=2).result
    np.testing.assert_array_equal(r["loss_ablated"].values, r["loss_intact"].values)
    assert float(r["delta_later_ablated"]) == 0.0


def test_ablating_every_head_equals_zeroed_output_projections(abl_store):
    ck = load_checkpoint("abl")
    net = ck.model.eval()
    ids = _ids()
    every = [(layer, h) for layer in range(1, len(net.blocks) + 1) for h in range(net.config.n_heads)]
    with ablated(net, every, "zero"):
        hit = token_losses(net, ids)
    assert not np.array_equal(hit, token_losses(net, ids)), "the hooks are gone after the block"
    by_hand = load_checkpoint("abl").model.eval()
    with torch.no_grad():
        for block in by_hand.blocks:
            block.attn.wo.weight.zero_()
    np.testing.assert_array_equal(hit, token_losses(by_hand, ids))


def test_mean_ablation_of_a_head_replaces_it_by_its_mean_output(abl_store):
    net = load_checkpoint("abl").model.eval()
    ids = _ids()
    means = head_means(net, ids)
    assert means.shape == (len(net.blocks), net.config.n_heads, net.config.head_dim)
    with ablated(net, [(1, 0)], "mean", means):
        mean_hit = token_losses(net, ids)
    with ablated(net, [(1, 0)], "zero"):
        zero_hit = token_losses(net, ids)
    assert not np.array_equal(mean_hit, zero_hit) and np.isfinite(mean_hit).all()


def test_the_study_ranks_heads_and_draws_random_controls_apart_from_them(abl_store):
    r = studies.ablate("abl", heads="top:prev_frame:1", clips=3, random_draws=3, mode="mean").result
    chosen = set(zip(r["head_layer"].values.tolist(), r["head_index"].values.tolist(), strict=True))
    assert len(chosen) == 1 and r.attrs["ranked_by"] == "previous_frame" and r.attrs["ablation"] == "mean"
    draws = [set(zip(a, b, strict=True)) for a, b in zip(r["random_layer"].values.tolist(),
                                                           r["random_index"].values.tolist(), strict=True)]  # fmt: skip
    assert all(len(d) == 1 and not d & chosen for d in draws) and len({frozenset(d) for d in draws}) == 3
    assert r.attrs["study"] == "ablation" and r.attrs["checkpoint"] == "abl"


def test_cli_round_trip_writes_numbers_and_page(abl_store, capsys, tmp_path):
    out = tmp_path / "ablation.nc"
    code, printed, err = run_cli(
        capsys, "ablate", "--ckpt", "abl", "--heads", "1.0,2.1", "--clips", "3", "--draws", "2",
        "--out", str(out), "--json",
    )  # fmt: skip
    assert code == 0, err
    data = json.loads(printed)
    assert data["data"] == str(out) and data["figure"] == str(tmp_path / "ablation.html")
    saved = xr.open_dataset(out)
    alone = studies.ablate("abl", heads="1.0,2.1", clips=3, random_draws=2).result
    np.testing.assert_allclose(saved["loss_ablated"].values, alone["loss_ablated"].values, rtol=1e-6)
    page = (tmp_path / "ablation.html").read_text(encoding="utf-8")
    assert "toto-lens ablate --ckpt abl --heads 1.0,2.1" in page


@pytest.mark.parametrize(
    "args, message",
    [(["--heads", "9.0"], "does not exist; the model has layers 1"), (["--heads", "top:bogus:2"], "score one of"),
     (["--mode", "max"], "zero or mean"), (["--clips", "0"], "at least one clip")],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(abl_store, capsys, tmp_path, args, message):
    code, out, err = run_cli(capsys, "ablate", "--ckpt", "abl", *args, "--out", str(tmp_path / "x.nc"))
    assert_usage_error(code, err, message)
    with pytest.raises(StudyError, match="zero or mean"):
        studies.ablate("abl", mode="max")
