"""The figures a paper reader opens: what each shows is checked in its data (traces, text, labels), not
in pixels. Inputs are hand-made results with known numbers."""

import re

import numpy as np
import plotly.graph_objects as go
import pytest
import xarray as xr
from plotly.colors import qualitative

from toto_lens.analysis.induction import SCORES, stack_checkpoints
from toto_lens.data import MovingDigits
from toto_lens.figures import html_page, write_figure
from toto_lens.figures.clips import OBJECT_COLOURS, frame_numbers, mask_legend, preview_image
from toto_lens.figures.induction import colour_top, induction_heatmap_figure
from toto_lens.figures.probing import probing_figure


def probing_result(name: str, offset: float, tasks=("digit", "motion", "position", "velocity")) -> xr.Dataset:
    """A probe_layers-shaped result: 5 layers, 2 probes, 2 seeds; `velocity` unscored (NaN)."""
    layers, probes, seeds = np.arange(5), ["linear", "attention"], [0, 1]
    val = np.zeros((len(tasks), 2, 5, 2)) + offset + np.linspace(0, 0.4, 5)[None, None, :, None]
    val[:, :, :, 1] += 0.02
    val[list(tasks).index("velocity")] = np.nan
    n_train = np.full((len(tasks), 2, 2), 70)
    n_train[:, 1] = 40  # the attention probe had token activations for fewer clips
    return xr.Dataset(
        {
            "train_score": (("task", "probe", "layer", "seed"), val + 0.1),
            "val_score": (("task", "probe", "layer", "seed"), val),
            "n_train": (("task", "probe", "seed"), n_train),
            "n_val": (("task", "probe", "seed"), n_train // 2),
        },
        coords={
            "task": list(tasks), "probe": probes, "layer": layers, "seed": seeds,
            "depth": ("layer", layers / 4), "metric": ("task", ["accuracy", "accuracy", "r2", "r2"]),
            "chance": ("task", [0.1, 0.2, 0.0, 0.0]),
        },
        attrs={"checkpoint": name, "dataset": "moving-digits-val"},
    )  # fmt: skip


def stacked_probing() -> xr.Dataset:
    both = [probing_result("demo", 0.3), probing_result("demo-untrained", 0.1)]
    return xr.concat(both, dim=xr.Variable("checkpoint", ["demo", "demo-untrained"]), coords="different",
                     compat="equals", combine_attrs="drop_conflicts")  # fmt: skip


def test_probing_figure_draws_each_checkpoint_with_layer_numbers_and_no_empty_panel():
    fig = probing_figure(stacked_probing())
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    names = {t.name for t in lines}
    assert names == {f"{p} · {c}" for p in ("linear", "attention") for c in ("demo", "demo-untrained")}, names
    trained = next(t for t in lines if t.name == "linear · demo")
    untrained = next(t for t in lines if t.name == "linear · demo-untrained")
    assert trained.line.dash != untrained.line.dash, "the untrained baseline must look different"
    assert [int(c[0]) for c in trained.customdata] == [0, 1, 2, 3, 4], "layer numbers in customdata"
    assert "layer %{customdata[0]" in trained.hovertemplate
    assert np.allclose(trained.y, 0.31 + np.linspace(0, 0.4, 5)), "seed mean of the trained model"
    assert list(fig.layout.xaxis.ticktext)[2].startswith("2<br>"), "ticks name the layer, then its depth"
    titles = [a.text for a in fig.layout.annotations if "(" in a.text and "chance" not in a.text]
    assert len(titles) == 3 and not any(t.startswith("velocity") for t in titles), (
        f"a panel per task with scores, none for the unscored velocity: {titles}"
    )
    digit = next(t for t in titles if t.startswith("digit"))
    assert "linear 70 train / 35 val" in digit and "attention 40 train / 20 val" in digit, digit
    visible = [k for k in fig.layout if k.startswith("xaxis") and fig.layout[k].visible is not False]
    assert len(visible) == 3, f"3 tasks fill a 1 × 3 grid with no empty axes, got {visible}"


def test_probing_figure_of_one_checkpoint_keeps_plain_probe_names():
    fig = probing_figure(probing_result("demo", 0.3, tasks=("digit", "motion", "position", "velocity")))
    assert {t.name for t in fig.data if t.mode == "lines+markers"} == {"linear", "attention"}


def test_probing_figure_of_many_checkpoints_shades_them_in_order_instead_of_repeating_a_line_style():
    steps = [0, 100, 200, 300, 400, 500]  # snapshots over training: more than the four line styles
    result = xr.concat([probing_result(f"run-step{s}", 0.1 + s / 1000) for s in steps], dim="checkpoint",
                       coords="different", compat="equals", combine_attrs="drop_conflicts")  # fmt: skip
    result = result.assign_coords(checkpoint=[f"run-step{s}" for s in steps])
    lines = [
        t for t in probing_figure(result).data if t.mode == "lines+markers" and t.name.startswith("linear")
    ]
    looks = [(t.line.color, t.line.dash) for t in lines if t.xaxis in (None, "x")]
    assert len(looks) == len(steps) and len(set(looks)) == len(steps), (
        f"each checkpoint must look its own: {looks}"
    )
    whiteness = [sum(int(c[i : i + 2], 16) for i in (1, 3, 5)) for c, _ in looks]
    assert whiteness == sorted(whiteness, reverse=True), "pale to full in checkpoint order, the last full"
    assert looks[-1][0].lower() == qualitative.Plotly[0].lower(), (
        "the last checkpoint in the probe's own colour"
    )


def fake_scores(name: str, step: int, strong: float) -> xr.Dataset:
    data = {k: (("layer", "head"), np.full((3, 4), 0.05)) for k in SCORES}
    data["prefix_matching"][1][1, 2] = strong  # layer 2, head 2
    data["first_copy_loss"], data["second_copy_loss"] = ((), 3.0), ((), 1.0)
    return xr.Dataset(data, coords={"layer": [1, 2, 3], "head": np.arange(4)},
                      attrs={"checkpoint": name, "step": step})  # fmt: skip


def test_heatmap_has_values_in_cells_a_fitted_scale_with_the_threshold_and_a_row_per_checkpoint():
    stacked = stack_checkpoints([fake_scores("untrained", 0, 0.2), fake_scores("trained", 600, 0.62)])
    fig = induction_heatmap_figure(stacked, threshold=0.4)
    maps = [t for t in fig.data if t.type == "heatmap"]
    assert len(maps) == 2 * len(SCORES), "a heatmap per score for each of the two checkpoints"
    assert {t.name.split(" · ")[-1] for t in maps} == {"untrained", "trained"}
    trained = next(t for t in maps if t.name.endswith("· trained") and t.name.startswith("induction (random"))
    assert trained.text[1][2] == "0.62" and trained.texttemplate == "%{text}", "values written in the cells"
    assert "%{z:.3f}" in trained.hovertemplate, "and in the hover"
    bar = fig.layout.coloraxis
    assert bar.cmax == pytest.approx(0.65) and bar.cmin == 0, "the scale ends at the largest score"
    assert "0.4 threshold" in list(bar.colorbar.ticktext), "the threshold is marked on the colour bar"
    outlined = [t for t in fig.data if t.type == "scatter" and len(t.x)]
    assert len(outlined) == 1 and list(outlined[0].x) == [2] and list(outlined[0].y) == [2], (
        "only the trained model's head 2 of layer 2 is above 0.4"
    )
    assert "trained" in fig.layout.title.text and "untrained" in fig.layout.title.text
    assert colour_top(np.array([0.01, 0.02]), 0.4) == pytest.approx(0.45), (
        "weak heads keep the threshold visible"
    )


def test_html_pages_have_a_title_a_source_line_and_the_command(tmp_path):
    fig = go.Figure(go.Scatter(x=[0, 1], y=[1, 2]), layout={"title": {"text": "Loss <br><sup>sub</sup>"}})
    page = write_figure([fig, fig], tmp_path / "f.html", source="checkpoint demo on moving-digits-val",
                        command="toto-lens redundancy --ckpt demo --out 'a b.html'").read_text()  # fmt: skip
    assert re.search(r"<title>Loss</title>", page), "the tab says what the page is (its first line)"
    assert "Made from: checkpoint demo on moving-digits-val" in page
    assert "Regenerate: <code>toto-lens redundancy --ckpt demo --out &#x27;a b.html&#x27;</code>" in page
    assert page.count("Plotly.newPlot") == 2 and page.split("</head>")[0].count("<title>") == 1
    assert "<title>x &amp; y</title>" in html_page([], "x & y"), "titles are escaped"


def test_clip_preview_numbers_the_frames_and_explains_the_mask_colours():
    clips = [MovingDigits("val", 2)[i] for i in range(2)]
    legend = mask_legend(clips)
    assert [label for label, _ in legend] == ["object 1", "object 2"], legend
    assert legend[0][1] == tuple(int(v) for v in OBJECT_COLOURS[1]), "the legend's colour is the mask's"
    assert frame_numbers(clips[0]) == list(range(16)) and frame_numbers(clips[0], slice(3, 4)) == [3]
    image = np.asarray(preview_image(clips).convert("RGB"))
    swatch = np.all(image[-20:] == OBJECT_COLOURS[1].astype(np.uint8), axis=-1)
    assert swatch.sum() >= 50, "a swatch of object 1's colour sits in the legend row at the bottom"
