"""The extractor as a user runs it: stored values equal a plain forward pass; resume, locks, bad input."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import xarray as xr
from extract_helpers import make_checkpoint
from helpers import reference_patterns, run_cli

from toto_lens import load_checkpoint, open_cache
from toto_lens.config import variants
from toto_lens.data import Layout, open_source
from toto_lens.paths import cache_root
from toto_lens.run import ExtractPlan, capture, extract
from toto_lens.run.reduce import frame_attention, frame_attention_from_scores
from toto_lens.store import CacheError
from toto_lens.store.schema import REPRODUCIBLE
from toto_lens.store.writer import StoreLock, bytes_on_disk
from toto_lens.tokenizers import tokenizer_from_spec

CLIPS, BATCH = 6, 4  # a partial last batch on purpose


def plain_forward(model, tokens):
    """Hidden states of every layer (0 = embeddings) and the logits, without any hook."""
    x = model.tok_embeddings(tokens)
    T = tokens.shape[1]
    states = [x]
    for block in model.blocks:
        x = block(x, model.rope_cos[:T], model.rope_sin[:T], None)
        states.append(x)
    logits = model.output(model.norm(x)) * model.output_scale
    return torch.stack(states, 1), logits  # (B, L+1, T, D), (B, T, V)


@pytest.fixture
def store(tmp_path):
    make_checkpoint("ex")
    path = tmp_path / "ex.zarr"
    extract(
        "ex", clips=CLIPS, batch_size=BATCH, out=path, acts=("pooled", "frame", "token"),
        attn=("frame", "pattern"), pattern_clips=2, dtype="float32",
    )  # fmt: skip
    return path


def reference(n=CLIPS):
    ck = load_checkpoint("ex")
    tok = tokenizer_from_spec(ck.tokenizer, ck.tokenizer_state)
    source = open_source("moving-digits", split="val", n_clips=n, seed=0)
    clips = [source[i] for i in range(n)]
    layout = Layout(clips[0].num_frames, *tok.grid)
    tokens = torch.as_tensor(layout.encode_clips(clips, tok))
    with torch.no_grad():
        states, logits = plain_forward(ck.model, tokens)
        patterns, _ = reference_patterns(ck.model, tokens)
    return ck, layout, tokens, states, logits, patterns


def test_stored_values_equal_a_plain_forward_pass(store):
    ds = open_cache(path=store)
    ck, layout, tokens, states, logits, patterns = reference()
    assert np.array_equal(ds.tokens.values, tokens.numpy()), "stored tokens are not the clips' token ids"
    visual = states[:, :, 1:-1]  # (B, L+1, F·P, D)
    np.testing.assert_allclose(ds.acts_token.values, states.numpy(), atol=1e-5, err_msg="per-token acts")
    np.testing.assert_allclose(
        ds.acts_pooled.values, visual.mean(2).numpy(), atol=1e-5, err_msg="pooled = mean over visual tokens"
    )
    for f in range(layout.frames):
        frame = states[:, :, layout.frame_slice(f)].mean(2).numpy()
        np.testing.assert_allclose(ds.acts_frame.sel(frame=f).values, frame, atol=1e-5, err_msg=f"frame {f}")
    nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none")
    assert np.isnan(ds.loss.values[:, 0]).all(), "position 0 has no loss: nothing precedes it"
    np.testing.assert_allclose(ds.loss.values[:, 1:], nll.numpy(), atol=1e-5, err_msg="loss ≠ cross-entropy")
    # attention: block i is layer i + 1; the mass from frame qf to frame kf, by an explicit loop
    a = patterns[1][0, 1].numpy()  # clip 0, block 1 (layer 2), head 1
    q, k = layout.frame_slice(3), layout.frame_slice(2)
    assert (
        abs(float(ds.attn_frame.sel(clip=0, layer=2, head=1, qframe=3, kframe=2)) - a[q, k].sum(1).mean())
        < 1e-5
    )
    assert ds.attn_frame.sel(layer=0).isnull().all(), "embeddings have no attention: layer 0 must read NaN"
    np.testing.assert_allclose(
        ds.attn_pattern.sel(layer=2).values[:2], patterns[1][:2].numpy(), atol=1e-3, err_msg="patterns"
    )
    assert ds.attn_pattern.isel(clip=slice(2, None)).isnull().all(), "only pattern_clips clips are written"


def test_frame_attention_without_patterns_equals_the_patterns_mass(tmp_path):
    """`--attn frame` alone keeps the fused attention and reduces the scores a few query frames at a time;
    every (clip, layer, head, qframe, kframe) must equal the mass of the eager path's full pattern, or a
    query block, the causal mask or the frame grouping is off."""
    make_checkpoint("ex")
    path = tmp_path / "frames.zarr"
    extract("ex", clips=CLIPS, batch_size=BATCH, out=path, attn=("frame",), dtype="float32")
    ds = open_cache(path=path)
    _, layout, _, _, _, patterns = reference()
    for block, pattern in enumerate(patterns):
        np.testing.assert_allclose(
            ds.attn_frame.sel(layer=block + 1).values, frame_attention(pattern, layout).numpy(), atol=1e-5,
            err_msg=f"block {block}",
        )  # fmt: skip
    assert ds.attn_frame.sel(layer=0).isnull().all()


def test_frame_attention_from_scores_in_small_query_blocks_with_grouped_heads():
    """Blocks of one query frame, and keys shared by two query heads (GQA), give the pattern's mass too."""
    from toto_lens.model import Toto

    config = variants()["toto-tiny"].replace(vocab_size=40, n_layers=1, n_kv_heads=2, context_length=66)
    model = Toto(config).eval()
    layout = Layout(4, 4, 4)  # 4 frames of 4×4 tokens: T = 66
    tokens = torch.randint(4, 40, (2, layout.length))
    with torch.no_grad(), capture(model, ["blocks.0.attn.hook_rot_q", "blocks.0.attn.hook_rot_k"]) as cache:
        model(tokens)
        patterns, _ = reference_patterns(model, tokens)
    q = cache["blocks.0.attn.hook_rot_q"].transpose(1, 2)  # (B, H, T, hd)
    k = cache["blocks.0.attn.hook_rot_k"].transpose(1, 2).repeat_interleave(2, dim=1)  # 2 kv heads → 4
    got = frame_attention_from_scores(q, k, model.blocks[0].attn.scale, layout, queries=16)
    np.testing.assert_allclose(got.numpy(), frame_attention(patterns[0], layout).numpy(), atol=1e-5)


def test_labels_coordinates_and_attributes(store):
    ds = open_cache(path=store)
    source = open_source("moving-digits", split="val", n_clips=CLIPS, seed=0)
    assert list(ds.digit.values) == [source[i].digit for i in range(CLIPS)], (
        "digit labels do not follow clips"
    )
    assert list(ds.motion.values) == [source[i].motion for i in range(CLIPS)]
    assert np.array_equal(ds.masks.values[3], source[3].masks), "masks are not the source's masks"
    assert list(ds.layer.values) == [0, 1, 2] and list(ds.depth.values) == [0, 0.5, 1]
    assert ds.pos_frame.values[0] == -1 and ds.pos_frame.values[1] == 0 and ds.row.values[9] == 1
    ck = load_checkpoint("ex")
    assert ds.toto.attr("checkpoint")["sha256"] == ck.sha256 and ds.attrs["complete"] is True
    assert ds.toto.attr("model_config")["dim"] == ck.config.dim and ds.toto.attr("request")["layers"] == [
        0,
        1,
        2,
    ]
    # structured attributes are JSON text: every attribute is a string, a number or a boolean
    assert all(isinstance(v, str | int | float) for v in ds.attrs.values()), ds.attrs
    plain = xr.open_zarr(store, consolidated=False)  # without toto-lens
    assert plain.acts_pooled.dims == ("clip", "layer", "feature") and "digit" in plain.coords
    xr.testing.assert_identical(plain.acts_pooled, ds.acts_pooled)


def test_float16_storage_matches_at_float16_precision(tmp_path):
    make_checkpoint("ex")
    extract("ex", clips=4, batch_size=4, out=tmp_path / "h.zarr", layers="-1")
    ds = open_cache(path=tmp_path / "h.zarr")
    assert ds.acts_pooled.dtype == np.float16 and list(ds.layer.values) == [2]
    _, _, _, states, _, _ = reference(4)
    np.testing.assert_allclose(
        ds.acts_pooled.values[:, 0].astype(np.float32),
        states[:, -1, 1:-1].mean(1).numpy(),
        rtol=2e-3,
        atol=2e-3,
    )


def test_stopped_run_resumes_to_the_same_values(tmp_path):
    make_checkpoint("ex")
    whole, part = tmp_path / "whole.zarr", tmp_path / "part.zarr"
    kwargs = dict(clips=10, batch_size=2, acts=("pooled", "frame", "token"), token_clips=3, attn=("frame",))
    extract("ex", out=whole, **kwargs)
    first = extract("ex", out=part, stop_after=2, **kwargs)
    assert not first.complete and first.batches_run == 2
    with pytest.raises(CacheError, match="unfinished"):
        open_cache(path=part)
    second = extract("ex", out=part, **kwargs)
    assert second.complete and second.batches_skipped == 2 and second.batches_run == 3
    a, b = open_cache(path=whole), open_cache(path=part)
    for name in a.data_vars:
        if a[name].dtype.kind == "f":  # equal within the documented bound (docs/cache-schema.md)
            rtol, atol = REPRODUCIBLE[str(a[name].dtype)]
            np.testing.assert_allclose(a[name].values, b[name].values, rtol=rtol, atol=atol, err_msg=name)
        else:
            np.testing.assert_array_equal(
                a[name].values, b[name].values, err_msg=f"{name} differs after resume"
            )


def test_a_second_writer_is_refused(tmp_path, capsys):
    make_checkpoint("ex")
    path = tmp_path / "locked.zarr"
    with StoreLock(path):  # what a running extraction holds
        code, _, err = run_cli(capsys, "extract", "--ckpt", "ex", "--clips", "2", "--out", str(path))
    assert code == 2 and "another extraction is writing" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "extract", "--ckpt", "ex", "--clips", "2", "--out", str(path))
    assert code == 0, f"the lock must go with its holder: {err}"


def test_a_foreign_store_is_refused_unless_overwrite(tmp_path, capsys):
    make_checkpoint("ex")
    make_checkpoint("other", seed=1)
    path = str(tmp_path / "s.zarr")
    base = ["extract", "--clips", "2", "--out", path]
    assert run_cli(capsys, *base, "--ckpt", "ex")[0] == 0
    code, _, err = run_cli(capsys, *base, "--ckpt", "other")
    assert code == 2 and "another checkpoint" in err and "--overwrite" in err
    code, _, err = run_cli(capsys, *base, "--ckpt", "ex", "--layers", "0")
    assert code == 2 and "layers" in err, "other settings must be refused too"
    code, out, _ = run_cli(capsys, *base, "--ckpt", "ex")
    assert code == 0 and "0 batches written" in out, "the same command on a finished store does nothing"
    assert run_cli(capsys, *base, "--ckpt", "other", "--overwrite")[0] == 0
    assert open_cache(path=path).toto.attr("checkpoint")["sha256"] == load_checkpoint("other").sha256


def test_default_store_location_and_open_cache_by_name(capsys):
    make_checkpoint("ex")
    code, out, err = run_cli(capsys, "extract", "--ckpt", "ex", "--clips", "3", "--batch-size", "2")
    assert code == 0, err
    path = cache_root() / "ex" / "moving-digits-val.zarr"
    assert path.is_dir() and str(path) in out.replace("\n", "")
    assert open_cache("ex").sizes["clip"] == 3 and open_cache("ex", "moving-digits-val").sizes["clip"] == 3
    with pytest.raises(CacheError, match="no cache 'nope'"):
        open_cache("ex", "nope")
    assert run_cli(capsys, "extract", "--ckpt", "ex", "--clips", "2", "--data", "image-digits")[0] == 0
    assert open_cache("ex").toto.attr("dataset")["name"] == "moving-digits-val", (
        "with several stores, the one `extract` writes by default must be chosen"
    )
    assert open_cache("ex", "image-digits-val").sizes["clip"] == 2
    with pytest.raises(CacheError, match="toto-lens extract --ckpt missing"):
        open_cache("missing")


def test_dry_run_writes_nothing(tmp_path, capsys):
    make_checkpoint("ex")
    plan = extract("ex", clips=8, out=tmp_path / "d.zarr", acts=("token",), token_clips=2, dry_run=True)
    assert isinstance(plan, ExtractPlan) and not (tmp_path / "d.zarr").exists()
    sizes = plan.sizes()
    assert sizes["acts_token"] == 2 * 3 * 1026 * 32 * 2, "token acts: 2 clips × 3 layers × 1026 × 32 × fp16"
    code, out, _ = run_cli(capsys, "extract", "--ckpt", "ex", "--dry-run", "--out", str(tmp_path / "d.zarr"))
    assert (
        code == 0 and "nothing written" in out and "acts_pooled" in out and not (tmp_path / "d.zarr").exists()
    )


@pytest.mark.parametrize(
    "args, words",
    [
        (["--layers", "7"], "layer 7 is out of range: this model has layers 0…2"),
        (["--layers", "1:x"], "'x' is not a number"),
        (["--acts", "pooled,bogus"], "--acts: unknown 'bogus'"),
        (["--dtype", "bfloat16"], "--dtype must be one of float16, float32"),
        (["--clips", "0"], "--clips must be positive"),
        (["--data", "nope"], "unknown data 'nope'"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(capsys, args, words):
    make_checkpoint("ex")
    code, _, err = run_cli(capsys, "extract", "--ckpt", "ex", *args)
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err


def test_checkpoint_without_tokenizer_or_data_asks_for_them(capsys):
    from toto_lens.checkpoints import save_checkpoint
    from toto_lens.model import Toto

    save_checkpoint(Toto(variants()["toto-debug"]), "bare")  # no tokenizer, no training data recorded
    code, _, err = run_cli(capsys, "extract", "--ckpt", "bare", "--clips", "2")
    assert code == 2 and "--tokenizer" in err, "a checkpoint that records no tokenizer: say --tokenizer"
    code, _, err = run_cli(capsys, "extract", "--ckpt", "bare", "--clips", "2", "--tokenizer", "kmeans-64")
    assert code == 2 and "--data" in err, "a checkpoint that records no data: the message must say --data"
    bare = ["extract", "--ckpt", "bare", "--clips", "2", "--data", "moving-digits"]
    code, _, err = run_cli(capsys, *bare, "--tokenizer", "random-4096")
    assert code == 2 and "4096 codes" in err, "a tokenizer larger than the model's vocabulary must be refused"
    code, _, err = run_cli(capsys, *bare, "--tokenizer", "kmeans-64")
    assert code == 0, err


def test_cheap_checks_come_before_fitting_a_named_tokenizer(capsys):
    """A tokenizer named but not fitted yet takes minutes to fit: an unknown source, too many clips for
    the context, a bad layer or a vocabulary too large must be refused before, and nothing fitted."""
    from toto_lens.tokenizers.named import tokenizers_dir

    make_checkpoint("ex")
    base = ["extract", "--ckpt", "ex", "--clips", "2", "--tokenizer", "kmeans-37"]
    for extra, words in (
        (["--data", "nope"], "unknown data 'nope'"),
        (["--layers", "9"], "layer 9 is out of range"),
        (["--acts", "bogus"], "--acts: unknown 'bogus'"),
    ):
        code, _, err = run_cli(capsys, *base, *extra)
        assert code == 2 and words in err, err
    code, _, err = run_cli(capsys, "extract", "--ckpt", "ex", "--clips", "2", "--tokenizer", "kmeans-999")
    assert code == 2 and "999 codes" in err, err
    # 1×1 patches: 32×32 tokens a frame, far beyond the context; the grid comes from the name's -p1
    code, _, err = run_cli(capsys, "extract", "--ckpt", "ex", "--clips", "2", "--tokenizer", "random-64-p1")
    assert code == 2 and "do not fit the model's context" in err, err
    fitted = [n for n in ("kmeans-37", "kmeans-999", "random-64-p1") if (tokenizers_dir() / n).exists()]
    assert not fitted, f"{fitted} fitted before the cheap checks refused the run"


def test_an_unwritable_out_is_one_line_before_any_work(tmp_path):
    from helpers import run_cli_readonly

    make_checkpoint("ex")
    locked = tmp_path / "locked"
    locked.mkdir()
    done = run_cli_readonly(
        locked, "extract", "--ckpt", "ex", "--clips", "2", "--out", str(locked / "s.zarr")
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("error: cannot write") and "--out" in lines[0], lines[0]
    assert "extract:" not in done.stdout + done.stderr, "nothing may start before the place is checked"
    assert not any(locked.iterdir())


def test_the_first_line_says_what_is_extracted_where(tmp_path, capsys):
    make_checkpoint("ex")
    out = tmp_path / "s.zarr"
    code, stdout, err = run_cli(
        capsys, "extract", "--ckpt", "ex", "--clips", "3", "--layers", "0,2", "--out", str(out)
    )
    first = (stdout + err).replace("\n", " ")
    assert (
        code == 0 and "checkpoint ex, moving-digits-val (3 clips), layers 0, 2" in first and str(out) in first
    )


def test_store_size_survives_files_renamed_while_it_is_walked(tmp_path):
    """Another rank's zarr writes a `*.partial` file and renames it; measuring the store meanwhile must
    not raise FileNotFoundError (a torchrun extraction once failed this way)."""
    import threading

    (tmp_path / "kept").write_bytes(b"x" * 100)
    stop = threading.Event()

    def churn() -> None:
        i = 0
        while not stop.is_set():
            part = tmp_path / f"zarr.{i}.partial"
            part.write_bytes(b"y")
            part.rename(tmp_path / "zarr.json")
            i += 1

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        sizes = [bytes_on_disk(tmp_path) for _ in range(3000)]
    finally:
        stop.set()
        thread.join()
    assert min(sizes) >= 100 and max(sizes) <= 102, "the store's size lost or double-counted a file"
