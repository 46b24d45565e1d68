"""Probing, redundancy and n-grams on a store larger than the memory they are allowed (DESIGN.md, Scale).

A real store is written with the package's own writer and schema (no model: synthetic tokens, losses and
float16 activations with a planted digit signal), about three times larger than the headroom a child
process gets: the child runs the three analyses on a small store first (every import, thread pool and
BLAS buffer is made then), measures the address space it maps, and caps it at that plus `HEADROOM`
with `RLIMIT_AS` before it opens the large store. The analyses must finish there with the answers the
parent computes on the same store without a cap (everything at once, the way they read before), and,
as the control, reading any large variable whole (`ds.acts_pooled.values`) must fail with MemoryError
under the same cap: a return to eager loading fails this test.
"""

import json
import os
import pickle
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import xarray as xr

HEADROOM = 64 << 20  # bytes the child may map beyond its baseline once capped
BLOCK = 4 << 20  # the analyses' block_bytes under the cap (what one step holds of the store)
IN_MEMORY = 1 << 40  # block_bytes that makes every analysis read and compute everything at once
CODES = 64  # visual codes; token ids are codes + 4
SIGNAL_LAYERS = slice(3, None, 8)  # layers whose pooled features carry the digit

# The large store: 25,600 clips of 4 frames of 14×14 tokens, 50 layers of 80 features; chunks of 1,600
# clips (tokens and loss 5 MB each). A layer's probe fits 2M features, 8 MB as float32.
BIG = {"clips": 25_600, "layers": 50, "feature": 80, "frames": 4, "grid": 14, "batch": 1_600}
SMALL = {"clips": 1_600, "layers": 2, "feature": 80, "frames": 4, "grid": 14, "batch": 400}
CHECKED_LAYERS = [0, 3, 11, 24, 43, 49]  # fitted again in memory: a layer's probe depends on no other layer


def write_store(path, clips, layers, feature, frames, grid, batch, seed=0, token_clips=0):
    """A finished schema-2 store written batch by batch with `toto_lens.store.writer`, as `extract` does:
    tokens (later frames often copy the frame before), losses and float16 `acts_pooled` rounded to
    quarters (so chunks compress: the store is small on disk, large in memory), labels `digit`, `motion`;
    with `token_clips`, `acts_token` of the first that many clips (the digit planted in one token)."""
    from toto_lens.data.labels import LabelSpec
    from toto_lens.data.layout import Layout
    from toto_lens.store.schema import (
        ExtractRequest,
        Shape,
        data_variables,
        label_variables,
        static_coordinates,
        used_dims,
        with_kind,
    )
    from toto_lens.store.writer import (
        StoreLock,
        finish,
        now,
        open_or_create,
        schema_attrs,
        write_batch,
        write_coordinates,
    )

    layout = Layout(frames, grid, grid)
    acts = ("pooled", "token") if token_clips else ("pooled",)
    request = ExtractRequest(
        layers=tuple(range(layers)), acts=acts, token_clips=token_clips, dtype="float16", batch_size=batch
    )
    labels = with_kind(
        (LabelSpec("digit", (), "int64", ("0", "1", "2", "3")), LabelSpec("motion", (), "int64", ("a", "b")))
    )
    shape = Shape(clip=clips, layers=request.layers, n_blocks=layers - 1, frames=frames, rows=grid, cols=grid,
                  feature=feature, head=1, image=(0, 0), labels=labels)  # fmt: skip
    specs = data_variables(request, clips, labels, masks=False) + label_variables(shape)
    config = {"vocab_size": CODES + 4, "pad_id": 0, "video_start_id": 1, "end_id": 2, "image_start_id": 3,
              "n_layers": layers - 1}  # fmt: skip
    attrs = schema_attrs(
        checkpoint={"name": "synthetic", "path": "none", "sha256": "0" * 64}, model_config=config,
        tokenizer={"kind": "none"}, dataset={"name": "synthetic-val", "source": "synthetic", "split": "val"},
        layout={"frames": frames, "rows": grid, "cols": grid, "length": layout.length},
        request=request.to_dict(), created=now(),
    )  # fmt: skip
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((4, feature)).astype(np.float32)
    with StoreLock(path):
        group, _ = open_or_create(path, attrs, specs, shape, batch, overwrite=True)
        positions = (layout.frame_of_position, layout.row_of_position, layout.col_of_position)
        write_coordinates(group, static_coordinates(shape, *positions, used_dims(specs)))
        group.attrs.update({"arrays_ready": True})
        for start in range(0, clips, batch):
            n = min(batch, clips - start)
            digit = rng.integers(0, 4, n)
            codes = rng.integers(0, CODES, (n, frames, grid, grid))
            copied = rng.random(codes.shape) < 0.6
            for f in range(1, frames):
                codes[:, f] = np.where(copied[:, f], codes[:, f - 1], codes[:, f])
            tokens = layout.pack(codes).astype(np.int32)
            loss = np.round(rng.exponential(2.0, tokens.shape) * 16).astype(np.float32) / 16
            loss[:, 0] = np.nan  # nothing predicts the start token
            acts = rng.standard_normal((n, layers, feature), dtype=np.float32)
            acts[:, SIGNAL_LAYERS] += means[digit][:, None]
            arrays = {
                "tokens": tokens, "loss": loss, "acts_pooled": (np.round(acts * 4) / 4).astype(np.float16),
                "kind": np.zeros(n, np.int8), "digit": digit, "motion": rng.integers(0, 2, n),
                "complete": np.ones(n, np.uint8),
            }  # fmt: skip
            if start < token_clips:  # as the extractor: only the clips below token_clips, one chunk each
                written = min(n, token_clips - start)
                token = rng.standard_normal((written, layers, layout.length, feature), dtype=np.float32)
                where = rng.integers(1, layout.length - 1, written)
                token[np.arange(written), SIGNAL_LAYERS.start, where] += 3 * means[digit[:written]]
                arrays["acts_token"] = token.astype(np.float16)
            for name, values in arrays.items():
                write_batch(group, name, start, values, request.layers)
        finish(group, path)
    return path


def analyses(ds, block_bytes):
    """The three analyses as their studies run them (one seed and one L2 strength keep the fits short)."""
    from toto_lens.analysis.ngrams import cache_ngram_stats
    from toto_lens.analysis.probing import probe_layers
    from toto_lens.analysis.redundancy import redundancy

    return {
        "probing": probe_layers(ds, ("digit",), seeds=(0,), l2=(1.0,), block_bytes=block_bytes),
        "redundancy": redundancy(ds, block_bytes=block_bytes),
        "ngrams": cache_ngram_stats(ds, (1, 2, 3), block_bytes=block_bytes),
    }


CHILD = textwrap.dedent(
    """
    import gc, json, pickle, resource, sys, time
    import dask, dask.array as da
    from toto_lens.store import open_cache
    sys.path.insert(0, sys.argv[6])
    from test_larger_than_memory import analyses

    big, small, out, headroom, block = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])

    def mapped(field="VmSize"):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))

    warm = open_cache(path=small)
    analyses(warm, block)
    warm.load()
    da.ones(256, chunks=1).map_blocks(lambda b: b + 1).sum().compute()  # every dask worker started
    del warm
    gc.collect()
    baseline = mapped()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (baseline + headroom, hard))
    t0 = time.perf_counter()
    ds = open_cache(path=big)
    results = analyses(ds, block)
    seconds = time.perf_counter() - t0
    peak = mapped("VmPeak") - baseline  # at most: the warm-up's own peak may be the higher
    eager = {}
    # One chunk at a time on this thread: a dask worker that a machine with more cores would start only
    # now cannot get a stack under the cap ("can't start new thread"), which would hide what is measured.
    with dask.config.set(scheduler="synchronous"):
        for name in ("acts_pooled", "loss", "tokens"):
            try:
                ds[name].values
                eager[name] = "loaded"
            except MemoryError:
                eager[name] = "MemoryError"
            except Exception as e:
                eager[name] = f"{type(e).__name__}: {e}"
            gc.collect()
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    with open(out + "/results.pkl", "wb") as f:
        pickle.dump(results, f)
    with open(out + "/report.json", "w") as f:
        json.dump({"baseline": baseline, "peak": peak, "seconds": seconds, "eager": eager}, f)
    """
)

# One allocator arena and a fixed mmap threshold, so that freed blocks go back to the system and the
# mapped size follows what is in use; one BLAS thread, so that no per-thread BLAS buffer appears after
# the baseline is measured. RLIMIT_AS (all mapped address space) rather than RLIMIT_DATA (private
# writable memory only): reserved address space and file mappings count too, so no allocation, however
# it is made, escapes the cap; the large baseline that comes with it (python, numpy, torch, dask and zarr
# map ~0.85 GB) is measured after the warm-up and added to the cap.
CHILD_ENV = {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_THRESHOLD_": "131072", "OMP_NUM_THREADS": "1",
             "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # fmt: skip


def test_results_do_not_depend_on_the_blocks_they_are_read_in(tmp_path):
    """One layer, one chunk, one position at a time (block_bytes=1) against everything at once, on the
    store read lazily and loaded: anything but the same numbers means the streamed analyses compute
    something else than they did reading whole arrays."""
    from toto_lens.analysis.attention_probes import AttentionConfig
    from toto_lens.analysis.probing import probe_layers
    from toto_lens.store import open_cache

    path = write_store(tmp_path / "s.zarr", clips=240, layers=5, feature=8, frames=3, grid=3, batch=40,
                       token_clips=120)  # fmt: skip
    lazy = open_cache(path=path)
    whole = analyses(lazy.load(), IN_MEMORY)
    for ds in (open_cache(path=path), lazy):
        pieces = analyses(ds, 1)
        for name, result in whole.items():
            assert pieces[name].identical(result), f"{name} read in pieces differs from {name} read whole"
    cfg = AttentionConfig(heads=2, epochs=2, lrs=(1e-3, 1e-2))
    kwargs = {"tasks": ("digit",), "probes": ("attention",), "seeds": (0, 1), "attention": cfg}
    at_once = probe_layers(lazy, **kwargs, block_bytes=IN_MEMORY)
    by_layer = probe_layers(open_cache(path=path), **kwargs, block_bytes=1)
    assert by_layer.identical(at_once), "attention probes fitted a layer at a time differ from all at once"
    score = at_once["val_score"].values
    assert np.isfinite(score).all() and ((score >= 0) & (score <= 1)).all(), (
        "every layer's probe should be fitted"
    )


@pytest.mark.parametrize("block_bytes", [0, -5, 2.5, True])
def test_a_bad_block_size_is_one_clear_error(tmp_path, block_bytes):
    from toto_lens.analysis import AnalysisError
    from toto_lens.analysis.ngrams import cache_ngram_stats
    from toto_lens.analysis.probing import probe_layers
    from toto_lens.analysis.redundancy import redundancy
    from toto_lens.store import open_cache

    ds = open_cache(path=write_store(tmp_path / "s.zarr", clips=40, layers=2, feature=4, frames=2, grid=2,
                                     batch=20))  # fmt: skip
    for run in (
        lambda: probe_layers(ds, ("digit",), seeds=(0,), block_bytes=block_bytes),
        lambda: redundancy(ds, block_bytes=block_bytes),
        lambda: cache_ngram_stats(ds, block_bytes=block_bytes),
    ):
        with pytest.raises(AnalysisError) as info:
            run()
        assert str(info.value) == f"block_bytes must be a positive number of bytes, got {block_bytes!r}", (
            "a block size that cannot bound memory must be refused in one line, before any work"
        )


def test_ngram_chunks_count_as_the_whole_array_and_must_share_a_grid(tmp_path):
    from toto_lens.analysis import AnalysisError
    from toto_lens.analysis.ngrams import ngram_stats

    ids = np.random.default_rng(0).integers(0, 30, (90, 3, 4))
    whole = ngram_stats(ids, 30, (1, 2, 3), block_bytes=IN_MEMORY)
    np.save(tmp_path / "ids.npy", ids)
    for chunked in (
        [ids[:7], ids[7:50], ids[50:]],  # a list of chunks
        (ids[i : i + 11] for i in range(0, 90, 11)),  # a generator
        np.load(tmp_path / "ids.npy", mmap_mode="r"),  # a memory-mapped array, a few frames a chunk
    ):
        got = ngram_stats(chunked, 30, (1, 2, 3), block_bytes=500)
        assert got.identical(whole), "counts merged over chunks must equal the counts of all frames at once"
    with pytest.raises(AnalysisError, match=r"frames of 3×4 tokens, got \(2, 4, 3\)"):
        ngram_stats([ids[:2], ids[:2].transpose(0, 2, 1)], 30)
    with pytest.raises(AnalysisError, match="no chunk of frames"):
        ngram_stats(iter([]), 30)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    folder = tmp_path_factory.mktemp("larger-than-memory")
    t0 = time.perf_counter()
    big = write_store(folder / "big.zarr", **BIG)
    small = write_store(folder / "small.zarr", **SMALL, seed=1)
    print(f"stores written in {time.perf_counter() - t0:.1f} s")
    return big, small, folder


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status, caps RLIMIT_AS")
def test_analyses_stream_a_store_three_times_larger_than_their_memory(stores):
    from toto_lens.analysis.ngrams import ngram_stats
    from toto_lens.analysis.probing import probe_layers
    from toto_lens.analysis.redundancy import redundancy
    from toto_lens.store import open_cache

    big, small, folder = stores
    out = folder / "child"
    out.mkdir(exist_ok=True)
    here = os.path.dirname(__file__)
    command = [sys.executable, "-c", CHILD, str(big), str(small), str(out), str(HEADROOM), str(BLOCK), here]
    t0 = time.perf_counter()
    proc = subprocess.run(
        command, env={**os.environ, **CHILD_ENV}, capture_output=True, text=True, timeout=540
    )
    assert proc.returncode == 0, f"the capped analyses failed:\n{proc.stderr[-4000:]}"
    report = json.loads((out / "report.json").read_text())
    ds = open_cache(path=big)
    sizes = {name: ds[name].nbytes for name in ("acts_pooled", "loss", "tokens")}
    print(
        f"child {time.perf_counter() - t0:.1f} s (analyses {report['seconds']:.1f} s), baseline "
        f"{report['baseline'] >> 20} MiB, cap +{HEADROOM >> 20} MiB, used at most +{report['peak'] >> 20} MiB; "
        f"variables { ({k: f'{v >> 20} MiB' for k, v in sizes.items()}) }"
    )
    assert sizes["acts_pooled"] >= 3 * HEADROOM, "the features should be several times what the child may map"
    assert min(sizes["loss"], sizes["tokens"]) > HEADROOM, "tokens and loss should not fit in the cap either"
    assert report["eager"] == dict.fromkeys(sizes, "MemoryError"), (
        f"reading a whole variable under the cap should fail, or the cap proves nothing: {report['eager']}"
    )

    with open(out / "results.pkl", "rb") as f:
        capped = pickle.load(f)
    expected = {
        "probing": probe_layers(
            ds, ("digit",), seeds=(0,), layers=CHECKED_LAYERS, l2=(1.0,), block_bytes=IN_MEMORY
        ),
        "redundancy": redundancy(ds, block_bytes=IN_MEMORY),
    }

    probing, want = capped["probing"].sel(layer=CHECKED_LAYERS), expected["probing"]
    assert np.array_equal(probing["chosen"], want["chosen"]) and np.array_equal(
        probing["n_train"], want["n_train"]
    ), "a probe fitted a layer at a time chose another λ or other clips than all layers at once"
    np.testing.assert_allclose(
        probing["val_score"], want["val_score"], rtol=0, atol=1e-9,
        err_msg="a probe fitted a layer at a time scores otherwise than all layers fitted at once",
    )  # fmt: skip
    val = capped["probing"]["val_score"].sel(task="digit", probe="linear", seed=0).values
    planted = np.zeros(BIG["layers"], dtype=bool)
    planted[SIGNAL_LAYERS] = True
    assert val[planted].min() > 0.9 and val[~planted].max() < 0.3, (
        f"the planted layers should decode the digit and no other layer should: {val.round(2)}"
    )

    xr.testing.assert_allclose(capped["redundancy"], expected["redundancy"], rtol=1e-12, atol=0)
    for key, value in expected["redundancy"].attrs.items():
        got = capped["redundancy"].attrs[key]
        same = (
            got == pytest.approx(value, rel=1e-12, nan_ok=True) if isinstance(value, float) else got == value
        )
        assert same, f"redundancy attribute {key} is {got!r} read in blocks, {value!r} read at once"
    loss = ds["loss"].values.astype(np.float64)
    frame = ds["pos_frame"].values
    by_hand = np.stack([np.nanmean(loss[:, frame == f], axis=1) for f in range(BIG["frames"])], 1).mean(0)
    np.testing.assert_allclose(
        capped["redundancy"]["frame_loss"], by_hand, rtol=1e-12,
        err_msg="frame_loss should be the mean over clips of each clip's mean loss in the frame",
    )  # fmt: skip

    # The n-grams of every frame's codes at once, as one array: the counts merged over blocks must be these.
    codes = ds["tokens"].values[:, frame >= 0].reshape(-1, BIG["grid"], BIG["grid"]) - 4
    whole = ngram_stats(codes, CODES, (1, 2, 3), name="synthetic-val", block_bytes=IN_MEMORY)
    xr.testing.assert_identical(capped["ngrams"], whole)
