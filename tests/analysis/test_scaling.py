"""`analysis.scaling`: the power law, the compute frontier and learning-rate transfer on hand-made numbers."""

import numpy as np
import pytest
import xarray as xr

from toto_lens.analysis import AnalysisError
from toto_lens.analysis.scaling import frontier, lr_transfer, power_law

LRS = [2.0**-9, 2.0**-8, 2.0**-7, 2.0**-6, 2.0**-5]


def test_power_law_recovers_a_and_alpha_exactly():
    compute = np.geomspace(1e9, 1e15, 7)
    fit = power_law(compute, 12.5 * compute**-0.076)
    assert fit.a == pytest.approx(12.5, rel=1e-9), "the prefactor of exact power-law points"
    assert fit.alpha == pytest.approx(0.076, rel=1e-9), "the exponent of exact power-law points"
    assert fit.r2 == pytest.approx(1.0) and fit.n == 7, "exact points fit perfectly, all of them counted"
    np.testing.assert_allclose(fit(compute), 12.5 * compute**-0.076, err_msg="the fit predicts its points")
    assert "C^−0.076" in fit.formula(), fit.formula()


def test_power_law_r2_is_below_one_on_noisy_points_and_in_log_space():
    rng = np.random.default_rng(0)
    compute = np.geomspace(1e6, 1e12, 30)
    loss = 5.0 * compute**-0.1 * np.exp(rng.normal(0, 0.05, compute.size))
    fit = power_law(compute, loss)
    assert 0.5 < fit.r2 < 1.0, f"noisy points: r² strictly between, got {fit.r2}"
    assert fit.alpha == pytest.approx(0.1, abs=0.02), "the exponent survives 5 % noise"


@pytest.mark.parametrize(
    ("compute", "loss", "said"),
    [
        ([1e9], [3.0], "at least 2 points"),
        ([], [], "at least 2 points"),
        ([1e9, 0.0], [3.0, 2.0], "positive"),
        ([1e9, 1e10], [3.0, -1.0], "positive"),
        ([1e9, 1e10], [3.0, np.nan], "positive"),
        ([1e9, 1e9], [3.0, 2.0], "different compute"),
        ([1e9, 1e10], [3.0], "as many"),
    ],
)
def test_power_law_refuses_what_it_cannot_fit(compute, loss, said):
    with pytest.raises(ValueError, match=said) as e:
        power_law(compute, loss)
    assert isinstance(e.value, AnalysisError), "a one-line error, not a numpy warning or a nan fit"


def test_frontier_keeps_the_points_no_cheaper_point_beats():
    compute = [1, 2, 3, 4, 5, 6, 6]
    loss = [5.0, 4.0, 4.5, 3.0, 3.0, 2.5, 2.0]
    # 3 is beaten by the cheaper 2 (4.0); 5 ties 4 and is not lower; of the two at compute 6 the lower.
    assert frontier(compute, loss).tolist() == [0, 1, 3, 6], "dominated points would bias the fit"


def test_frontier_is_in_compute_order_whatever_the_input_order_and_skips_nan():
    compute = [40, 10, 30, 20, 50]
    loss = [1.0, 3.0, np.nan, 2.0, 1.5]
    assert frontier(compute, loss).tolist() == [1, 3, 0], "by compute; NaN never on it; 50 beaten by 40"


def _table(best_index_by_width: dict[int, int | None], param: str = "mup") -> xr.Dataset:
    """val_loss over (width, lr) shaped like a sweep: a parabola in log2 lr around each width's best."""
    widths = sorted(best_index_by_width)
    loss = np.full((len(widths), len(LRS)), np.nan)
    for i, w in enumerate(widths):
        best = best_index_by_width[w]
        if best is not None:
            loss[i] = 3.0 + 0.1 * (np.arange(len(LRS)) - best) ** 2 - 0.01 * i
    return xr.Dataset({"val_loss": (("width", "lr"), loss)}, coords={"width": widths, "lr": LRS}).expand_dims(
        parametrization=[param]
    )


def test_a_flat_best_lr_has_no_spread_and_transfers():
    out = lr_transfer(_table({64: 2, 128: 2, 256: 2}))
    mup = out.sel(parametrization="mup")
    np.testing.assert_allclose(mup["best_lr"].values, 2.0**-7, err_msg="the paper's 2^-7 at every width")
    assert float(mup["best_lr_spread"]) == 0 and float(mup["spread_steps"]) == 0, "one best lr: no spread"
    assert bool(mup["transfers"]), "spread 0 ≤ 1 grid step reads as transfer"


def test_a_best_lr_that_moves_down_with_width_spreads_and_does_not_transfer():
    both = xr.concat(
        [_table({64: 2, 128: 2, 256: 3}), _table({64: 4, 128: 2, 256: 0}, "standard")],
        dim="parametrization",
    )
    out = lr_transfer(both)
    std = out.sel(parametrization="standard")
    assert float(std["spread_steps"]) == 4 and float(std["best_lr_spread"]) == pytest.approx(4.0), (
        "2^-5 at width 64 down to 2^-9 at 256: four grid steps, four octaves"
    )
    assert float(std["best_lr_shift_steps"]) == -4 and not bool(std["transfers"]), "moves down, no transfer"
    mup = out.sel(parametrization="mup")
    assert float(mup["spread_steps"]) == 1 and bool(mup["transfers"]), "one neighbouring step still transfers"
    assert out["best_lr"].dims == ("parametrization", "width"), out["best_lr"].dims


def test_diverged_runs_are_ignored_and_a_width_whose_runs_all_diverged_has_no_best_lr():
    table = _table({64: 2, 128: 2, 256: None})
    # The lowest loss of width 128 would sit at lr index 1 if its diverged run counted as a number.
    table["val_loss"].loc[{"width": 128, "lr": LRS[1]}] = np.nan
    table["val_loss"].loc[{"width": 128, "lr": LRS[0]}] = np.nan
    out = lr_transfer(table).sel(parametrization="mup")
    assert float(out["best_lr"].sel(width=128)) == 2.0**-7, "NaN rows are skipped, not taken as the minimum"
    assert np.isnan(float(out["best_lr"].sel(width=256))), "every run of 256 diverged: no best lr"
    assert int(out["best_lr_index"].sel(width=256)) == -1
    assert float(out["spread_steps"]) == 0, "the spread is over the widths that have a best lr"


def test_every_run_diverged_gives_nan_spread_and_no_transfer():
    out = lr_transfer(_table({64: None, 128: None})).sel(parametrization="mup")
    assert np.isnan(float(out["spread_steps"])) and not bool(out["transfers"]), "nothing converged"


def test_a_table_without_parametrization_is_mup_and_the_lr_grid_is_sorted():
    table = _table({64: 2, 128: 3}).isel(parametrization=0, drop=True).isel(lr=[4, 0, 2, 1, 3])
    out = lr_transfer(table)
    assert list(out["parametrization"].values) == ["mup"]
    assert list(out["lr"].values) == LRS, "grid steps count along the sorted lr grid"
    assert float(out.sel(parametrization="mup")["spread_steps"]) == 1


def test_bad_tables_are_refused_in_one_line():
    with pytest.raises(AnalysisError, match="val_loss"):
        lr_transfer(xr.Dataset({"loss": ("width", [1.0])}))
    bad = _table({64: 2}).assign_coords(lr=[-1.0, 1, 2, 3, 4])
    with pytest.raises(AnalysisError, match="positive"):
        lr_transfer(bad)
