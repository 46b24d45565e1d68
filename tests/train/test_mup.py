"""μP: the coordinate check stays flat across widths and grows without μP; the LR sweep writes its table."""

import csv

import pytest
import torch
from helpers import run_cli

from toto_lens.config import ModelConfig
from toto_lens.model import Toto
from toto_lens.train import TrainConfig
from toto_lens.train.coord import coord_check
from toto_lens.train.optim import param_groups


@pytest.mark.slow
def test_coordinate_check_is_flat_with_mup_and_grows_without():
    widths = [64, 128, 256]
    mup = coord_check(widths, mup=True)
    sp = coord_check(widths, mup=False)
    for layer in range(1, 3):  # the blocks' outputs (0 is the embedding, constant by construction)
        ratio_mup = mup[256][layer] / mup[64][layer]
        ratio_sp = sp[256][layer] / sp[64][layer]
        assert 0.67 < ratio_mup < 1.5, (
            f"μP activations of block {layer} changed {ratio_mup:.2f}× over 4× width"
        )
        assert ratio_sp > 4, (
            f"without μP block {layer} grew only {ratio_sp:.2f}×: the check would not see a difference"
        )


def test_mup_groups_scale_hidden_learning_rates_and_decay():
    config = ModelConfig(
        vocab_size=40, dim=128, n_layers=2, n_heads=4, ffn_dim=512, context_length=32, mup_base_width=32
    )
    model = Toto(config)
    groups = {
        g["name"]: g
        for g in param_groups(model, TrainConfig(mup=True, weight_decay=0.1), config.mup_width_mult)
    }
    assert groups["hidden"]["lr_scale"] == pytest.approx(1 / 4) and groups["hidden"][
        "weight_decay"
    ] == pytest.approx(0.4)
    assert groups["embeddings"]["lr_scale"] == 1.0 and groups["gains"]["weight_decay"] == 0.0
    hidden = {id(p) for p in groups["hidden"]["params"]}
    assert id(model.blocks[0].attn.wq.weight) in hidden and id(model.output.weight) not in hidden
    n = sum(len(g["params"]) for g in groups.values())
    assert n == len(list(model.parameters())), "every parameter in exactly one group"


def test_mup_model_starts_with_a_zero_readout_and_scaled_attention():
    config = ModelConfig(
        vocab_size=40, dim=128, n_layers=2, n_heads=4, ffn_dim=512, context_length=32, mup_base_width=32
    )
    model = Toto(config)
    assert torch.count_nonzero(model.output.weight) == 0
    assert model.blocks[0].attn.scale == pytest.approx((32 // 4) ** 0.5 / 32), (
        "1/d attention, equal at base width"
    )
    assert model.output_scale == pytest.approx(1 / 4)


def test_sweep_lr_writes_one_row_per_pair(tmp_path, capsys):
    out = tmp_path / "sweep.csv"
    args = [
        "train", "sweep-lr", "--widths", "32", "64", "--lrs", "1e-2", "3e-2", "--out", str(out), "--model",
        "toto-debug", "--steps", "3", "--batch-size", "2", "--train-clips", "8", "--val-clips", "2", "--tokenizer",
        "kmeans-64",
    ]  # fmt: skip
    code, stdout, _ = run_cli(capsys, *args)
    assert code == 0
    rows = list(csv.DictReader(out.open()))
    assert [(int(r["width"]), float(r["lr"])) for r in rows] == [
        (32, 1e-2),
        (32, 3e-2),
        (64, 1e-2),
        (64, 3e-2),
    ]
    assert all(float(r["final_train_loss"]) > 0 and r["mup"] == "True" for r in rows)
    assert "learning-rate sweep" in stdout
