import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
from helpers import run_cli

from toto_lens.analysis import AnalysisError
from toto_lens.analysis import probes as probes_mod
from toto_lens.analysis.attention_probes import AttentionConfig
from toto_lens.analysis.probes import Rows, fit_linear
from toto_lens.analysis.probing import best_layer, probe_layers, split_clips, summarise

CLASSES = 4


def make_cache(
    n_clips=160, layers=(0, 1, 2, 3), n_blocks=3, d=16, frames=4, grid=(2, 2), signal_layer=2, strength=2.0,
    images=0.25, seed=0,
) -> xr.Dataset:  # fmt: skip
    """A cache that follows docs/cache-schema.md, in memory: noise everywhere except a class signal
    (`digit`, and each frame's `frame_digit`) in the pooled and per-frame features of `signal_layer`."""
    rng = np.random.default_rng(seed)
    n_layers, tokens = len(layers), frames * grid[0] * grid[1]
    kind = (rng.random(n_clips) < images).astype(np.int64)
    digit = rng.integers(0, CLASSES, n_clips)
    motion = np.where(kind == 1, -1, rng.integers(0, 3, n_clips))
    frame_digit = np.where(kind[:, None] == 1, rng.integers(0, CLASSES, (n_clips, frames)), digit[:, None])
    position = rng.uniform(4, 28, (n_clips, frames, 2, 2))
    velocity = np.diff(position, axis=1, append=position[:, -1:])
    velocity[kind == 1] = np.nan  # image sequences have no velocity
    at = list(layers).index(signal_layer)
    means = rng.standard_normal((CLASSES, d))
    pooled = rng.standard_normal((n_clips, n_layers, d))
    pooled[:, at] += strength * means[digit]
    per_frame = rng.standard_normal((n_clips, n_layers, frames, d))
    per_frame[:, at] += strength * means[frame_digit]
    pos_frame = np.concatenate([[-1], np.repeat(np.arange(frames), tokens // frames), [-1]])
    return xr.Dataset(
        {
            "acts_pooled": (("clip", "layer", "feature"), pooled.astype(np.float32)),
            "acts_frame": (("clip", "layer", "frame", "feature"), per_frame.astype(np.float32)),
            "acts_token": (
                ("clip", "layer", "position", "feature"),
                rng.standard_normal((n_clips, n_layers, tokens + 2, d)).astype(np.float32),
            ),
        },
        coords={
            "clip": np.arange(n_clips), "layer": list(layers), "depth": ("layer", np.array(layers) / n_blocks),
            "position": np.arange(tokens + 2), "pos_frame": ("position", pos_frame), "frame": np.arange(frames),
            "feature": np.arange(d), "kind": ("clip", kind), "digit": ("clip", digit),
            "motion": ("clip", motion), "frame_digit": (("clip", "frame"), frame_digit),
            "object_position": (("clip", "frame", "object", "axis"), position),
            "object_velocity": (("clip", "frame", "object", "axis"), velocity),
        },
        attrs={"checkpoint": {"name": "tiny", "path": "x", "sha256": "0"}},
    )  # fmt: skip


def test_linear_probe_finds_the_planted_layer_and_shuffled_labels_stay_at_chance():
    """Only layer 2 carries the digit: a probe that peaks elsewhere, or learns shuffled labels, is broken."""
    ds = make_cache(n_clips=300)
    result = probe_layers(ds, tasks=("digit",), seeds=(0, 1, 2))
    assert best_layer(result, "digit", "linear") == 2, "the best layer should be the one with the signal"
    mean = summarise(result)["val_mean"].sel(task="digit", probe="linear")
    chance = float(result["chance"].sel(task="digit"))
    assert float(mean.sel(layer=2)) > 0.9 > chance + 0.5, "the planted layer should decode far above chance"

    shuffled = ds.assign_coords(digit=("clip", np.random.default_rng(1).permutation(ds["digit"].values)))
    control = summarise(probe_layers(shuffled, tasks=("digit",), seeds=(0, 1, 2)))["val_mean"]
    # 90 val clips × 3 seeds at p ≈ 1/4: one standard error of the seed mean is sqrt(.25·.75/270) ≈ 0.026,
    # so 0.12 is > 4 standard errors; a probe above it learned labels that carry no signal.
    assert float(control.max()) < 1 / CLASSES + 0.12, f"shuffled labels decoded: {control.values}"


def _standardised(x, train):
    mean, std = x[:, train].mean(1, keepdims=True), x[:, train].std(1, keepdims=True)
    return (x - mean) / (std + 1e-5)


def test_linear_probe_agrees_with_sklearn_logistic_regression():
    """Same features, same splits, same L2 (C = 1/(λ·n_train)): accuracy within 1 point of sklearn's,
    or the batched L-BFGS does not solve the problem sklearn solves."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    n, layers, d, classes = 600, 4, 32, 5
    y = rng.integers(0, classes, n)
    scale = np.array([0.0, 0.15, 0.3, 0.6])[:, None, None]  # from hopeless to easy
    x = (rng.standard_normal((layers, n, d)) + scale * rng.standard_normal((classes, d))[y][None]).astype(
        np.float32
    )
    train, val = split_clips(n, seed=0, strata=y)
    rows = Rows(train, val, train, val)  # one λ: the inner fold is not used
    lam = 1 / len(train)  # sklearn's default C = 1
    ours = fit_linear(x, y, rows, classes=classes, l2=(lam,))
    z = _standardised(x, train)
    theirs = np.array(
        [LogisticRegression(C=1.0).fit(z[i, train], y[train]).score(z[i, val], y[val]) for i in range(layers)]
    )
    assert np.abs(ours.val - theirs).max() <= 0.01, f"val accuracy differs: ours {ours.val}, sklearn {theirs}"
    assert np.all(ours.chosen == lam), "with one λ that λ should be reported"


def test_problems_fitted_together_equal_problems_fitted_alone():
    """Layers and seeds share one batch, and problems leave it as they converge: a mix-up of which
    problem is which (when the batch shrinks) would give a layer another layer's probe."""
    rng = np.random.default_rng(2)
    n, layers, d, classes = 240, 4, 12, 4
    y = rng.integers(0, classes, n)
    scale = np.array([0.0, 0.3, 0.8, 2.0])[:, None, None]  # converge after very different iterations
    x = (rng.standard_normal((layers, n, d)) + scale * rng.standard_normal((classes, d))[y][None]).astype(
        np.float32
    )
    splits = []
    for seed in (0, 1):
        train, val = split_clips(n, seed=seed, strata=y)
        inner_tr, inner_va = split_clips(len(train), seed=10 + seed, strata=y[train])
        splits.append(Rows(train, val, train[inner_tr], train[inner_va]))
    grid = (1e-3, 1e-1)
    together = fit_linear(x, y, splits, classes=classes, l2=grid)
    for s, rows in enumerate(splits):
        for layer in range(layers):
            alone = fit_linear(x[layer : layer + 1], y, rows, classes=classes, l2=grid)
            assert alone.chosen[0] == together.chosen[s, layer], f"seed {s} layer {layer}: another λ"
            assert abs(alone.val[0] - together.val[s, layer]) < 1e-9, f"seed {s} layer {layer}: another fit"


def test_grid_is_chosen_on_the_inner_fold_never_on_val():
    """Val rows must not influence the choice of λ: changing only val labels must not change it."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 200, 8)).astype(np.float32)
    y = rng.integers(0, 3, 200)
    train, val = split_clips(200, seed=0)
    inner_tr, inner_va = split_clips(len(train), seed=1)
    rows = Rows(train, val, train[inner_tr], train[inner_va])
    first = fit_linear(x, y, rows, classes=3, l2=(1e-3, 1e-1, 10.0))
    y2 = y.copy()
    y2[val] = (y2[val] + 1) % 3
    second = fit_linear(x, y2, rows, classes=3, l2=(1e-3, 1e-1, 10.0))
    assert np.array_equal(first.chosen, second.chosen), "λ depended on val labels"


def test_attention_probe_finds_a_signal_in_one_token():
    """One token per clip (at a random place) holds a marker and the digit; the mean over 64 tokens
    dilutes it. Attention pooling should find it where average pooling cannot; if not, it does not attend."""
    ds = make_cache(n_clips=240, layers=(0, 1), n_blocks=1, grid=(4, 4), signal_layer=1, strength=0.0)
    rng = np.random.default_rng(3)
    tokens = ds["acts_token"].values.copy()
    n, _, length, d = tokens.shape
    marker = np.zeros(d, dtype=np.float32)
    marker[0] = 6.0
    means = 3.0 * rng.standard_normal((CLASSES, d)).astype(np.float32)
    means[:, 0] = 0
    where = rng.integers(1, length - 1, n)  # a visual position, never the start or end token
    tokens[np.arange(n), 1, where] += marker + means[ds["digit"].values]
    visual = ds["pos_frame"].values >= 0
    ds = ds.assign(acts_token=(ds["acts_token"].dims, tokens))
    ds = ds.assign(acts_pooled=(("clip", "layer", "feature"), tokens[:, :, visual].mean(2)))
    cfg = AttentionConfig()  # the defaults: what a user gets
    result = probe_layers(ds, tasks=("digit",), probes=("linear", "attention"), seeds=(0,), attention=cfg)
    val = result["val_score"].sel(task="digit", seed=0)
    assert float(val.sel(probe="attention", layer=1)) > 0.85, f"attention missed the token: {val.values}"
    linear = float(val.sel(probe="linear", layer=1))
    assert linear < 0.75, "the mean over 64 tokens should dilute the signal (else the test proves nothing)"
    assert float(val.sel(probe="attention", layer=1)) > linear + 0.25, "attention should beat average pooling"
    assert float(val.sel(probe="attention", layer=0)) < 0.45, "layer 0 is noise: attention overfits it"


def test_attention_mlp_and_per_frame_tasks_run():
    """The A.10 variant and per-frame attention (one frame's tokens) give scores in range for every layer."""
    ds = make_cache(n_clips=60, layers=(0, 2), d=8)
    cfg = AttentionConfig(heads=2, epochs=2)
    result = probe_layers(ds, ("frame_digit",), ("attention-mlp", "linear"), seeds=(0,), attention=cfg)
    score = result["val_score"].sel(task="frame_digit", seed=0)
    assert np.isfinite(score.values).all() and ((score >= 0) & (score <= 1)).all(), score.values
    assert float(score.sel(probe="linear", layer=2)) > 0.8, "per-frame features of layer 2 carry frame_digit"


def test_every_probe_fit_reports_its_progress_to_the_end():
    """A user waiting on attention probes sees each epoch of each seed; linear probes each batched fit."""
    events = []
    cfg = AttentionConfig(heads=2, epochs=3, lrs=(1e-3, 1e-2))
    probe_layers(make_cache(n_clips=60, layers=(0, 2), d=8), ("digit",), ("linear", "attention"),
                 seeds=(0, 1), attention=cfg, progress=events.append)  # fmt: skip
    by_task = {}
    for e in events:
        by_task.setdefault(e.task, []).append((e.done, e.total, e.unit))
    attention = by_task["probe digit/attention"]
    # 2 seeds × (inner fold that picks the learning rate + refit) × 3 epochs
    assert [d for d, _, _ in attention] == list(range(13)) and {t for _, t, _ in attention} == {12}, attention
    assert {u for _, _, u in attention} == {"epochs"}
    assert by_task["probe digit/linear"] == [(0, 2, "fits"), (1, 2, "fits"), (2, 2, "fits")], by_task
    assert by_task["probe"][-1][:2] == (2, 2), "and the curves as a whole"


def test_regression_recovers_a_planted_linear_signal():
    """acts_pooled of layer 1 is a linear map of the mean position and velocity: R² near 1 there."""
    ds = make_cache(n_clips=200, layers=(0, 1), n_blocks=1, signal_layer=1, strength=0.0, d=12)
    rng = np.random.default_rng(0)
    target = np.concatenate(
        [ds["object_position"].isel(object=0).mean("frame").values,
         np.nan_to_num(ds["object_velocity"].isel(object=0).mean("frame").values)], axis=1,
    )  # fmt: skip
    pooled = ds["acts_pooled"].values.copy()
    pooled[:, 1] = target @ rng.standard_normal((4, 12)) + 0.01 * rng.standard_normal((200, 12))
    ds = ds.assign(acts_pooled=(ds["acts_pooled"].dims, pooled.astype(np.float32)))
    result = probe_layers(ds, ("position", "velocity"), seeds=(0, 1))
    val = summarise(result)["val_mean"].sel(probe="linear")
    assert (val.sel(layer=1) > 0.98).all(), f"planted linear targets should give R² near 1: {val.values}"
    assert (val.sel(layer=0) < 0.1).all(), "noise features should not predict positions"
    assert list(result["metric"].values) == ["r2", "r2"] and (result["chance"] == 0).all()
    videos = int((ds["kind"] == 0).sum())
    n = result["n_train"] + result["n_val"]
    assert (n.sel(task="velocity") == videos).all(), "velocity: image sequences (NaN) must be dropped"
    assert (n.sel(task="position") == 200).all(), "position: every clip has one"


def test_splits_are_by_clip_and_deterministic(monkeypatch):
    """No clip may sit in both train and val (per-frame rows included), and a seed always gives one split."""
    a, b = split_clips(100, seed=4, strata=np.arange(100) % 3)
    assert np.intersect1d(a, b).size == 0 and np.union1d(a, b).size == 100, "train/val must partition clips"
    again = split_clips(100, seed=4, strata=np.arange(100) % 3)
    assert all(np.array_equal(u, v) for u, v in zip((a, b), again, strict=True)), "a seed must fix the split"
    assert not np.array_equal(b, split_clips(100, seed=5, strata=np.arange(100) % 3)[1]), (
        "seeds should differ"
    )
    assert abs(len(b) - 30) <= 3, "about 30% of clips should be val"

    seen = []
    real = probes_mod.fit_linear
    monkeypatch.setattr(
        probes_mod, "fit_linear", lambda x, y, rows, **kw: seen.append(rows) or real(x, y, rows, **kw)
    )
    ds = make_cache(n_clips=50, frames=4)
    first = probe_layers(ds, ("frame_digit", "digit"), seeds=(0, 1))
    for rows in seen[0]:  # frame_digit, one Rows per seed: row = clip·4 + frame
        clips = [np.unique(r // 4) for r in (rows.train, rows.val, rows.inner_train, rows.inner_val)]
        assert np.intersect1d(clips[0], clips[1]).size == 0, "a clip's frames landed in train and val"
        assert np.intersect1d(clips[2], clips[3]).size == 0, "the inner fold must split by clip too"
        assert np.isin(np.union1d(clips[2], clips[3]), clips[0]).all(), "the inner fold must come from train"
    second = probe_layers(ds, ("frame_digit", "digit"), seeds=(0, 1))
    xr.testing.assert_identical(first, second)


def test_layers_argument_and_result_layout():
    """layers= selects layers; depth is the cache's; dims and coordinates are as documented."""
    ds = make_cache(n_clips=40)
    result = probe_layers(ds, ("digit", "motion"), seeds=(0, 1), layers=[1, 3])
    assert result["val_score"].dims == ("task", "probe", "layer", "seed")
    assert list(result["layer"].values) == [1, 3] and np.allclose(result["depth"], [1 / 3, 1.0])
    assert list(result["metric"].values) == ["accuracy", "accuracy"]
    motion_clips = int((ds["motion"] >= 0).sum())
    assert (
        int(result["n_train"].sel(task="motion")[0, 0] + result["n_val"].sel(task="motion")[0, 0])
        == motion_clips
    )
    summary = summarise(result)
    assert set(summary.data_vars) == {"train_mean", "train_std", "val_mean", "val_std"}
    assert np.isnan(summarise(result.isel(seed=[0]))["val_std"]).all(), "one seed has no spread"


@pytest.mark.parametrize(
    ("change", "kwargs", "message"),
    [
        (lambda ds: ds.drop_vars("acts_pooled"), {}, "toto-lens extract --ckpt tiny --acts pooled"),
        (lambda ds: ds.drop_vars("acts_token"), {"probes": ("attention",)}, "no acts_token"),
        (lambda ds: ds.drop_vars("motion"), {"tasks": ("motion",)}, "coordinate 'motion'"),
        (lambda ds: ds, {"tasks": ("colour",)}, "unknown task 'colour'; choose from digit, motion"),
        (lambda ds: ds, {"probes": ("mlp",)}, "unknown probe(s) ['mlp']"),
        (
            lambda ds: ds,
            {"layers": [1, 7]},
            "layer(s) [7] are not in the cache, which holds layers [0, 1, 2, 3]",
        ),
        (
            lambda ds: ds.assign_coords(motion=ds["motion"] * 0 - 1),
            {"tasks": ("motion",)},
            "task motion: image",
        ),
        (
            lambda ds: ds.assign(acts_token=ds["acts_token"].where(ds["clip"] < 5)),
            {"probes": ("attention",)},
            "only 5 labelled clips for task digit have acts_token",
        ),
    ],
    ids=["no-pooled", "no-token", "no-label", "task", "probe", "layer", "no-motion", "few-token-clips"],
)
def test_bad_input_is_an_analysis_error_that_says_what_to_do(change, kwargs, message):
    """Each mistake must end in one AnalysisError naming what is missing, not a KeyError or a bad fit."""
    with pytest.raises(AnalysisError, match=None) as info:
        probe_layers(change(make_cache(n_clips=40)), **{"seeds": (0,), **kwargs})
    assert message in str(info.value), str(info.value)


def test_missing_variable_names_the_extract_command_for_this_cache():
    """The command must rebuild this cache (same data, the activations it has plus the missing one), or
    the user runs it and gets the default dataset's store, still without what the probe needs."""
    ds = make_cache(n_clips=40).drop_vars("acts_token")
    ds.attrs.update(
        checkpoint={"name": "tiny"},
        dataset={"name": "image-digits-test", "source": "image-digits", "split": "test"},
        request={"acts": ["pooled"]},
    )
    with pytest.raises(AnalysisError) as info:
        probe_layers(ds, probes=("attention",), seeds=(0,))
    want = "toto-lens extract --ckpt tiny --data image-digits --split test --acts pooled,token --overwrite"
    assert want in str(info.value), str(info.value)


def test_importing_probing_does_not_import_torch():
    """The analysis modules must stay cheap to import (STYLE.md): torch loads only when a probe is fitted."""
    code = "import sys, toto_lens.analysis.probing, toto_lens.figures.probing; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False", "importing probing pulled in torch"


def test_figure_has_a_panel_per_task_with_chance_lines():
    """One panel per task, a line per probe, a dashed chance line per panel, layer in the hover."""
    from toto_lens.figures.probing import probing_figure

    result = probe_layers(make_cache(n_clips=60), ("digit", "motion"), seeds=(0, 1))
    fig = probing_figure(result)
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert len(lines) == 2 and {t.name for t in lines} == {"linear"}, "a line per (task, probe)"
    assert len(fig.layout.shapes) == 2 and all(s.line.dash == "dash" for s in fig.layout.shapes)
    assert "layer" in lines[0].hovertemplate and list(lines[0].x) == list(result["depth"].values)


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_cli_writes_curves_figure_and_table(tmp_path, capsys, suffix):
    """`toto-lens probe` reads a real extracted cache, writes data + .html, prints the best layers."""
    from extract_helpers import make_checkpoint

    from toto_lens.run import extract

    make_checkpoint("tiny")
    extract("tiny", clips=40, batch_size=20)  # the default store: cache/tiny/moving-digits-val.zarr
    out = tmp_path / f"curves{suffix}"
    code, stdout, stderr = run_cli(
        capsys,
        "probe",
        "--ckpt",
        "tiny",
        "--task",
        "digit,motion",
        "--seeds",
        "2",
        "--layers",
        "0,2",
        "--out",
        str(out),
    )
    assert code == 0, stderr
    saved = xr.open_zarr(out, consolidated=False) if suffix == ".zarr" else xr.open_dataset(out)
    assert saved["val_score"].shape == (2, 1, 2, 2) and list(saved["layer"].values) == [0, 2]
    assert out.with_suffix(".html").stat().st_size > 0, "the figure should be written beside the data"
    assert "best layer" in stdout and "digit" in stdout and "linear" in stdout
    code, _, stderr = run_cli(capsys, "probe", "--ckpt", "tiny", "--out", str(tmp_path / "x.csv"))
    assert code == 2 and ".nc" in stderr, "a wrong --out suffix should be one error line"


def test_a_sources_own_class_labels_are_probed_by_name():
    ds = make_cache(n_clips=40)
    ds = ds.assign_coords(camera=("clip", ds["digit"].values % 2), frame_label=ds["frame_digit"] % 3)
    result = probe_layers(ds, tasks=("camera", "frame_label"), seeds=(0,))
    assert list(result["task"].values) == ["camera", "frame_label"]
    assert list(result["metric"].values) == ["accuracy", "accuracy"], "integer labels are classes"
    assert np.isfinite(result["val_score"].values).all(), "every layer of both label tasks must be scored"
    with pytest.raises(AnalysisError, match="or this cache's labels: camera, frame_label"):
        probe_layers(ds, tasks=("weather",), seeds=(0,))
