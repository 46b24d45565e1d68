import json

import numpy as np
import pytest
import torch
import xarray as xr
from helpers import reference_patterns, run_cli

from toto_lens.analysis import AnalysisError
from toto_lens.analysis.induction import (
    SCORES,
    prefix_matching_score,
    stack_checkpoints,
)
from toto_lens.checkpoints import save_checkpoint
from toto_lens.data.layout import Layout
from toto_lens.model import Toto
from toto_lens.run.induction import induction_across_checkpoints, induction_scores


@pytest.fixture
def model(tiny_config):
    return Toto(tiny_config).eval()


def test_runner_on_a_tiny_model_matches_the_pure_scores(model, tiny_config):
    fed = []
    handle = model.tok_embeddings.register_forward_pre_hook(lambda m, args: fed.append(args[0].clone()))
    ds = induction_scores(model, n=10, batch=3, seed=0)
    handle.remove()
    assert ds["prefix_matching"].dims == ("layer", "head") and ds["layer"].values.tolist() == [1, 2]
    assert ds.sizes["head"] == tiny_config.n_heads
    seq = fed[0]
    assert (seq[:, 0] == tiny_config.video_start_id).all(), (
        "the sequence should start with the video start id"
    )
    r = seq[:, 1:]
    assert r.min() >= tiny_config.code_offset and r.max() < tiny_config.vocab_size, "r must be visual ids"
    assert torch.equal(r[:, :10], r[:, 10:]), "the second copy should repeat the first"
    with torch.no_grad():
        patterns, _ = reference_patterns(model, seq)
    for block, pattern in enumerate(patterns):
        np.testing.assert_allclose(
            ds["prefix_matching"].sel(layer=block + 1).values,
            prefix_matching_score(pattern.numpy(), 10).mean(axis=0),
            atol=1e-6,
            err_msg="block i should be layer i + 1, and the hook's reduction should equal the pure score",
        )
    for key in ("prefix_matching", "induction_detector"):
        assert ((ds[key] >= 0) & (ds[key] <= 1)).all(), f"{key} is attention mass, so in [0, 1]"
    assert np.isnan(ds["previous_frame"]).all() and ds.attrs["clips"] == 0, "no clips: video scores NaN"
    assert 0 < float(ds["first_copy_loss"]) < 10 and 0 < float(ds["second_copy_loss"]) < 10
    assert all(b.attn.impl == "sdpa" for b in model.blocks), "the runner should restore the attention path"
    assert not any(b.attn.hook_pattern._forward_hooks for b in model.blocks), "hooks should be removed"


def test_runner_scores_real_clips_and_cuts_them_to_the_context(tiny_config):
    layout = Layout(4, 2, 3)
    clips = layout.pack(np.random.default_rng(0).integers(0, 30, (2, 4, 2, 3)))
    small = Toto(tiny_config.replace(context_length=20)).eval()  # clip length 26 > 20
    ds = induction_scores(small, n=4, batch=2, clips_tokens=clips, layout=layout)
    for key in SCORES:
        assert np.isfinite(ds[key]).all() and ((ds[key] >= 0) & (ds[key] <= 1)).all(), key
    assert ds.attrs["repeated_clip_frames"] == 1 and ds.attrs["repeated_clip_period"] == 6, (
        "1 frame fits twice"
    )
    tokens = xr.DataArray(clips, dims=("clip", "position")).assign_coords(
        pos_frame=("position", layout.frame_of_position),
        row=("position", layout.row_of_position),
        col=("position", layout.col_of_position),
    )
    inferred = induction_scores(small, n=4, batch=2, clips_tokens=tokens)
    xr.testing.assert_allclose(ds, inferred)  # the layout read from the coordinates is the same one
    with pytest.raises(AnalysisError, match="n ≤ 9"):
        induction_scores(small, n=12)


def test_across_checkpoints_stacks_by_step_and_outer_joins_depth(tiny_config):
    save_checkpoint(Toto(tiny_config), "early", training={"step": 10})
    save_checkpoint(Toto(tiny_config.replace(n_layers=3)), "late", training={"step": 200})
    stacked = induction_across_checkpoints(["early", "late"], n=6, batch=2)
    assert stacked["checkpoint"].values.tolist() == ["early", "late"]
    assert stacked["step"].values.tolist() == [10.0, 200.0], "step comes from the training metadata"
    assert (
        stacked.sizes["layer"] == 3
        and np.isnan(stacked["prefix_matching"].sel(checkpoint="early", layer=3)).all()
    )
    np.testing.assert_allclose(stacked["depth"].sel(checkpoint="late").values, [1 / 3, 2 / 3, 1])
    with pytest.raises(AnalysisError, match="must differ"):
        stack_checkpoints([stacked.isel(checkpoint=0), stacked.isel(checkpoint=0)])


def test_cli_writes_heatmap_and_scores_and_notes_the_missing_cache(capsys, tmp_path, tiny_config):
    save_checkpoint(Toto(tiny_config), "tiny", training={"step": 3})
    code, out, err = run_cli(
        capsys, "induction", "--ckpt", "tiny", "--n", "8", "--out", str(tmp_path / "i.html")
    )
    assert code == 0, err
    assert "note: no cache (tiny" in out, "without a cache the clip scores are skipped, and said so"
    assert "prefix matching" in out and (tmp_path / "i.html").is_file()
    saved = xr.open_dataset(tmp_path / "i.nc")
    assert json.loads(saved.attrs["options"])["n"] == 8 and "prefix_matching" in saved, (
        "scores written beside the figure, with the options that made them"
    )


def fix_offset(model: Toto, offset: int) -> list:
    """Make every head of every block attend exactly `offset` tokens back (the first `offset` queries to
    the start token), whatever the tokens: a hook on `hook_pattern` that returns the replaced pattern,
    registered before the runner's own, so both the runner and the model's output see it."""

    def hook(module, args, pattern):
        a = torch.zeros_like(pattern)
        q = torch.arange(pattern.shape[-1])
        a[..., q, (q - offset).clamp(min=0)] = 1.0
        return a

    return [b.attn.hook_pattern.register_forward_hook(hook) for b in model.blocks]


def test_a_fixed_offset_head_is_an_induction_head_only_before_the_control(model):
    """At n = p + 1 the prefix-matching target is p tokens back, a frame for p tokens a frame: a head
    that reads one frame back scores 1 raw, and as much on [start; r; r′], so 0 once controlled. At the
    default length (1.5 frames) it misses the targets."""
    layout = Layout(2, 2, 4)  # 8 tokens a frame
    handles = fix_offset(model, layout.tokens_per_frame)
    try:
        confounded = induction_scores(model, n=9, batch=2, layout=layout)
        default = induction_scores(model, batch=2, layout=layout)
    finally:
        for h in handles:
            h.remove()
    np.testing.assert_allclose(confounded["prefix_matching"], 1.0)
    np.testing.assert_allclose(confounded["prefix_matching_control"], 1.0)
    np.testing.assert_allclose(confounded["prefix_matching_excess"], 0.0, atol=1e-6)
    assert confounded.attrs["n_confounded"] == 1 and confounded.attrs["tokens_per_frame"] == 8
    assert default.attrs["n"] == 12 and default.attrs["n_confounded"] == 0, "n = 1.5 frames by default"
    np.testing.assert_allclose(default["prefix_matching"], 0.0, atol=1e-6)
    with pytest.raises(AnalysisError, match="tokens a frame"):
        induction_scores(model, batch=2)  # a bare model with no layout cannot choose n


def test_control_repeats_nothing_and_keeps_the_first_copy(model, tiny_config):
    fed = []
    handle = model.tok_embeddings.register_forward_pre_hook(lambda m, args: fed.append(args[0].clone()))
    ds = induction_scores(model, n=10, batch=3, seed=0)
    handle.remove()
    repeated, control = fed[0], fed[1]
    assert torch.equal(repeated[:, :11], control[:, :11]), "the control shares the start and the first copy"
    assert not torch.equal(control[:, 1:11], control[:, 11:]), "r′ is fresh"
    xr.testing.assert_allclose(
        ds["prefix_matching_excess"], ds["prefix_matching"] - ds["prefix_matching_control"]
    )
