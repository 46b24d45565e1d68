"""`studies.lr_sweep` and `studies.scaling` with `toto-lens train sweep-lr` and `toto-lens scaling`: a real
tiny μP sweep with its standard control, and loss against compute over the runs it trained."""

import csv
import json

import numpy as np
import pytest
import torch
import xarray as xr
from helpers import assert_usage_error, run_cli

from toto_lens import load_checkpoint, studies
from toto_lens.config import ModelConfig
from toto_lens.model import Toto
from toto_lens.studies.base import StudyError
from toto_lens.studies.scaling import best_runs, lr_sweep_table

# The smallest sweep that is still one: two widths, two learning rates, two steps, validating every step.
SWEEP = dict(
    model="toto-debug", steps=2, batch_size=1, train_clips=4, val_clips=1, tokenizer="kmeans-64",
    data="moving-digits", eval_every=1,
)  # fmt: skip
WIDTHS, LRS = [16, 32], [1e-2, 1e-1]
CLI_SWEEP = [
    "--widths", "16", "32", "--lrs", "0.01", "0.1", "--model", "toto-debug", "--steps", "2", "--batch-size",
    "1", "--train-clips", "4", "--val-clips", "1", "--tokenizer", "kmeans-64", "--data", "moving-digits",
    "--eval-every", "1",
]  # fmt: skip


@pytest.fixture(scope="module")
def sweep(cache_root):
    """The sweep trained once (8 runs of 2 steps: μP and standard, about 30 s on 2 busy cores) in a cache
    root of its own; returns (root, study)."""
    with cache_root("scaling-sweep") as root:
        torch.manual_seed(0)
        study = studies.lr_sweep(WIDTHS, LRS, **SWEEP)
    return root, study


@pytest.mark.slow
def test_the_sweep_trains_every_pair_under_both_parametrizations(sweep):
    root, study = sweep
    r = study.result
    assert r["val_loss"].dims == ("parametrization", "width", "lr"), r["val_loss"].dims
    assert list(r["parametrization"].values) == ["mup", "standard"], "μP and the control"
    assert list(r["width"].values) == WIDTHS and list(r["lr"].values) == LRS
    assert np.isfinite(r["val_loss"].values).all(), "two steps of these rates do not diverge"
    for p in ("mup", "standard"):
        table = root / "sweeps" / f"lr-sweep-{p}.csv"
        rows = list(csv.DictReader(table.open()))
        assert len(rows) == 4 and {r["mup"] for r in rows} == {str(p == "mup")}, f"{table}: one row per pair"
        for row in rows:
            got = float(r["val_loss"].sel(parametrization=p, width=int(row["width"]), lr=float(row["lr"])))
            assert got == pytest.approx(float(row["val_loss"])), "the Dataset holds the table's numbers"
    for run in r["run"].values.ravel():
        meta = load_checkpoint(run).training
        assert meta["complete"] and meta["step"] == 2, f"{run}: a finished run of the sweep's steps"
    mup_cfg = load_checkpoint(r["run"].sel(parametrization="mup", width=32, lr=0.1).item()).config
    std_cfg = load_checkpoint(r["run"].sel(parametrization="standard", width=32, lr=0.1).item()).config
    assert mup_cfg.mup_base_width == 16 and std_cfg.mup_base_width is None, "μP base = the smallest width"
    best = r["best_lr"].values
    assert np.isin(best, LRS).all(), f"a best lr is a grid value: {best}"
    expected = r["val_loss"].idxmin("lr").values
    np.testing.assert_array_equal(best, expected, err_msg="best lr = argmin over lr of val loss")
    assert r["spread_steps"].dims == ("parametrization",) and set(r["spread_steps"].values) <= {0.0, 1.0}
    data = study.summary.data["parametrizations"]
    assert set(data) == {"mup", "standard"} and len(data["mup"]["widths"]) == 2
    assert study.summary.notes[0].startswith("μP: best lr"), study.summary.notes
    assert r.attrs["study"] == "lr_sweep" and r.attrs["command"].startswith("toto-lens train sweep-lr")
    assert best_runs(r) == [
        r["run"]
        .sel(parametrization="mup", width=w, lr=float(r["best_lr"].sel(parametrization="mup", width=w)))
        .item()
        for w in WIDTHS
    ], "the best run of each width, for the compute plot"


@pytest.mark.slow
def test_the_sweep_figure_draws_mup_solid_standard_dashed_and_stars_the_best(sweep):
    fig = sweep[1].figure
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert len(lines) == 4, "one line per width in each of the two panels"
    assert {t.line.dash for t in lines if t.xaxis == "x"} == {"solid"}, "μP solid"
    assert {t.line.dash for t in lines if t.xaxis == "x2"} == {"dash"}, "standard dashed"
    stars = [t for t in fig.data if t.marker.symbol == "star"]
    assert len(stars) == 4, "the best point of each width in each panel"
    assert fig.layout.xaxis.title.text == "lr (log2)" and fig.layout.yaxis.title.text.startswith("val_loss")


@pytest.mark.slow
def test_scaling_compute_is_six_times_the_non_embedding_parameters_times_the_tokens(sweep):
    from toto_lens.data import open_source
    from toto_lens.tokenizers import load_tokenizer

    runs = [str(x) for x in sweep[1].result["run"].sel(parametrization="mup", lr=0.1).values]
    study = studies.scaling(runs)
    r = study.result
    assert r["val_loss"].dims == ("model", "eval") and r.sizes["eval"] == 2, "an evaluation after each step"
    frames = open_source("moving-digits", split="val", n_clips=1)[0].frames.shape[0]
    tokens_per_step = 1 * (frames * int(np.prod(load_tokenizer("kmeans-64").grid)) + 2 - 1)  # batch × (T − 1)
    for run, model in zip(runs, r["model"].values, strict=True):
        weights = load_checkpoint(run).model.named_parameters()
        n = sum(p.numel() for name, p in weights if not name.startswith(("tok_embeddings.", "output.")))
        assert int(r["params"].sel(model=model)) == n, "N counts every weight but the embedding and readout"
        expected = 6 * n * np.array([1, 2]) * tokens_per_step
        np.testing.assert_allclose(
            r["compute"].sel(model=model).values, expected, err_msg="C = 6·N·D at steps 1 and 2"
        )
    assert np.isfinite([r.attrs[k] for k in ("a", "alpha", "r2")]).all(), "4 evaluations give a fit"
    assert r["on_frontier"].any() and "Kaplan" in r.attrs["compute"]
    assert study.summary.caption.startswith("fit on the frontier"), study.summary.caption
    fit = [t for t in study.figure.data if (t.name or "").startswith("fit: L = ")]
    assert fit and fit[0].line.dash == "dash", "the fitted law is drawn dashed with its formula"
    assert study.figure.layout.xaxis.type == "log" and study.figure.layout.yaxis.type == "log"


@pytest.mark.slow
def test_cli_sweep_reads_finished_runs_back_and_writes_page_and_numbers(sweep, capsys, tmp_path, monkeypatch):
    root, study = sweep
    monkeypatch.setenv("TOTO_LENS_CACHE", str(root))  # the fixture's runs: nothing trains again
    out = tmp_path / "sweep.html"
    code, printed, err = run_cli(capsys, "train", "sweep-lr", *CLI_SWEEP, "--out", str(out), "--json")
    assert code == 0, err
    data = json.loads(printed)
    assert data["figure"] == str(out) and data["data"] == str(tmp_path / "sweep.nc")
    assert data["mup table"].endswith("lr-sweep-mup.csv") and data["standard table"].endswith("-standard.csv")
    saved = xr.open_dataset(tmp_path / "sweep.nc")
    np.testing.assert_allclose(
        saved["val_loss"].values, study.result["val_loss"].values, err_msg="the same runs, read back"
    )
    assert "sweep-lr" in out.read_text(), "the page says which command writes it again"
    code, printed, err = run_cli(capsys, "train", "sweep-lr", *CLI_SWEEP, "--steps", "3", "--out", str(out))
    assert_usage_error(code, err, "holds a finished run with other settings")  # not silently read back


@pytest.mark.slow
def test_cli_scaling_round_trip(sweep, capsys, tmp_path):
    runs = [str(x) for x in sweep[1].result["run"].sel(parametrization="mup", lr=0.01).values]
    out = tmp_path / "scaling.nc"
    code, printed, err = run_cli(
        capsys, "scaling", "--ckpt", runs[0], "--ckpt", runs[1], "--out", str(out), "--json"
    )
    assert code == 0, err
    data = json.loads(printed)
    assert [m["model"] for m in data["models"]] == ["w16-lr0.01", "w32-lr0.01"], "named after the folders"
    assert data["fit_points"] >= 2 and data["alpha"] is not None and data["figure"].endswith("scaling.html")
    saved = xr.open_dataset(out)
    assert saved.attrs["alpha"] == pytest.approx(data["alpha"]) and saved.attrs["study"] == "scaling"
    code, printed, err = run_cli(capsys, "scaling", "--ckpt", runs[0], "--out", str(tmp_path / "s.html"))
    assert code == 0 and "fit on the frontier" in printed, "one model's two evaluations still fit"


def _logged_checkpoint(name: str, dim: int, rows: list[dict]) -> str:
    """A saved (untrained) model whose training log holds `rows`: a known curve, no training."""
    config = ModelConfig(vocab_size=40, dim=dim, n_layers=2, n_heads=2, ffn_dim=4 * dim, context_length=64)
    log = "".join(json.dumps(r) + "\n" for r in rows)
    from toto_lens.checkpoints import save_checkpoint

    save_checkpoint(Toto(config), name, training={"step": rows[-1]["step"], "complete": True},
                    files={"train_log.jsonl": log})  # fmt: skip
    return name


def test_scaling_fits_the_power_law_a_known_curve_was_made_of():
    a, alpha = 20.0, 0.08
    for name, dim in (("small", 16), ("large", 32)):
        n = ModelConfig(vocab_size=40, dim=dim, n_layers=2, n_heads=2, ffn_dim=4 * dim, context_length=64)
        rows = []
        for step in (10, 20, 40):
            tokens = step * 100
            c = 6 * n.num_params(embeddings=False) * tokens
            rows.append({"step": step, "tokens": tokens, "train_loss": 9.0})  # a log line without val
            rows.append({"step": step, "tokens": tokens, "train_loss": 9.0, "val_loss": a * c**-alpha})
        _logged_checkpoint(name, dim, rows)
    study = studies.scaling(["small", "large"])
    r = study.result
    assert r.sizes == {"model": 2, "eval": 3}, "only the rows with a validation loss are evaluations"
    assert r.attrs["a"] == pytest.approx(a) and r.attrs["alpha"] == pytest.approx(alpha), "exact points"
    assert r.attrs["fit_points"] == 6, "on an exact power law every point is on the frontier"
    assert list(r["final_step"].values) == [40, 40] and r["params"].dtype.kind == "i"


def test_scaling_refuses_a_checkpoint_without_evaluations_and_pads_shorter_logs():
    _logged_checkpoint("untrained", 16, [{"step": 5, "tokens": 500, "train_loss": 4.0}])
    with pytest.raises(StudyError, match="no validation evaluation"):
        studies.scaling("untrained")
    _logged_checkpoint("one", 16, [{"step": 5, "tokens": 500, "train_loss": 4.0, "val_loss": 3.0}])
    _logged_checkpoint(
        "two", 32, [{"step": s, "tokens": 100 * s, "train_loss": 4.0, "val_loss": 4.0 / s} for s in (1, 2)]
    )
    r = studies.scaling(["one", "two"]).result
    assert np.isnan(float(r["val_loss"].sel(model="one", eval=1))), "a shorter log is padded with NaN"
    assert float(r["final_val_loss"].sel(model="one")) == 3.0, "the final loss is its last evaluation"


def test_lr_sweep_table_reads_tables_sweep_lr_wrote(tmp_path):
    fields = ("width", "lr", "mup", "steps", "final_train_loss", "val_loss")
    for mup, name in ((True, "a.csv"), (False, "b.csv")):
        with open(tmp_path / name, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(fields)
            for width, best in ((64, 0.01), (128, 0.01 if mup else 0.001)):
                for lr in (0.001, 0.01):
                    w.writerow(
                        [width, lr, mup, 10, 3.0, 2.0 if lr == best else ("nan" if lr > best else 2.5)]
                    )
    from toto_lens.analysis.scaling import lr_transfer

    out = lr_transfer(lr_sweep_table(tmp_path / "a.csv", tmp_path / "b.csv"))
    assert list(out["parametrization"].values) == ["mup", "standard"]
    assert list(out["spread_steps"].values) == [0.0, 1.0], "μP flat; the control moves one step down"


def test_bad_input_is_one_line_and_exit_2_before_any_training(capsys, tmp_path):
    out = str(tmp_path / "x.html")
    code, _, err = run_cli(capsys, "train", "sweep-lr", "--widths", "0", "--lrs", "1e-2", "--out", out)
    assert_usage_error(code, err, "positive numbers")
    code, _, err = run_cli(capsys, "train", "sweep-lr", "--widths", "16", "--lrs", "1e-2", "--out", "x.txt")
    assert_usage_error(code, err, "--out 'x.txt'")
    args = ["train", "sweep-lr", "--widths", "16", "--lrs", "1e-2", "--model", "nope", "--out", out]
    code, _, err = run_cli(capsys, *args)
    assert_usage_error(code, err, "nope")
    code, _, err = run_cli(capsys, "scaling", "--ckpt", "missing", "--out", out)
    assert_usage_error(code, err, "no checkpoint 'missing'")
    code, _, err = run_cli(capsys, "scaling", "--ckpt", "missing", "--out", str(tmp_path / "x.png"))
    assert_usage_error(code, err, "--out 'x.png'")  # the output is checked first
    _logged_checkpoint("bare", 16, [{"step": 1, "tokens": 10, "train_loss": 4.0}])
    code, _, err = run_cli(capsys, "scaling", "--ckpt", "bare", "--out", out)
    assert_usage_error(code, err, "no validation evaluation")
    assert not (tmp_path / "x.html").exists(), "nothing written on refused input"
