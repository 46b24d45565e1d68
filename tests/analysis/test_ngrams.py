import json
import math
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from toto_lens.analysis import AnalysisError
from toto_lens.analysis import ngrams as ng
from toto_lens.analysis.ngrams import compare_ngram_stats, decode_ngram_keys, ngram_counts, ngram_stats
from toto_lens.errors import TotoLensError
from toto_lens.figures import FigureError, write_figure
from toto_lens.figures.ngrams import MAX_POINTS, ngram_rank_figure, ngram_summary_figure


def reference_counts(ids: np.ndarray, n: int) -> Counter:
    """The obvious way: per frame, the raster-order token list, every window of n as a tuple."""
    counts: Counter = Counter()
    for frame in ids:
        seq = frame.ravel().tolist()
        counts.update(tuple(seq[i : i + n]) for i in range(len(seq) - n + 1))
    return counts


def as_dict(keys: np.ndarray, counts: np.ndarray, n: int, vocab: int) -> dict:
    return {
        tuple(k): int(c)
        for k, c in zip(decode_ngram_keys(keys, n, vocab).tolist(), counts.tolist(), strict=True)
    }


def structured_ids(rng, frames=30, rows=4, cols=5, vocab=7) -> np.ndarray:
    # Repeating gradients with a per-frame shift: many repeated n-grams, unlike uniform noise.
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    shift = rng.integers(0, vocab, frames)[:, None, None]
    return ((r + 2 * c)[None] + shift) % vocab


@pytest.mark.parametrize("kind", ["random", "structured"])
@pytest.mark.parametrize("n", [1, 2, 3])
def test_counts_match_a_counter_over_frames(kind, n):
    rng = np.random.default_rng(n)
    vocab = 11 if kind == "random" else 7
    ids = rng.integers(0, vocab, (40, 3, 4)) if kind == "random" else structured_ids(rng, vocab=vocab)
    keys, counts = ngram_counts(ids, n, vocab)
    assert keys.dtype == np.int64 and counts.dtype == np.int64, "keys and counts should both be int64"
    assert np.all(np.diff(keys) > 0), "keys should be unique and sorted ascending"
    assert as_dict(keys, counts, n, vocab) == dict(reference_counts(ids, n)), "counts differ from Counter"
    windows = ids.shape[0] * (ids.shape[1] * ids.shape[2] - n + 1)
    assert counts.sum() == windows, "every frame should give rows*cols - n + 1 windows, no more"


def test_dense_and_sorting_paths_agree(monkeypatch):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 20, (50, 4, 4), dtype=np.uint8)  # unsigned ids are fine too
    dense = ngram_counts(ids, 3, 20)  # 20^3 keys: counted with bincount
    monkeypatch.setattr(ng, "_DENSE_MAX", 0)  # force np.unique
    sorted_ = ngram_counts(ids, 3, 20)
    assert all(np.array_equal(a, b) for a, b in zip(dense, sorted_, strict=True)), (
        "bincount and unique paths disagree"
    )


def test_windows_never_cross_frames_but_follow_raster_order_inside_one():
    ids = np.array([[[0, 0], [0, 0]], [[1, 1], [1, 1]]])  # frame 0 all 0s, frame 1 all 1s
    got = as_dict(*ngram_counts(ids, 2, 2), 2, 2)
    assert (0, 1) not in got, "the 2-gram (0, 1) exists only across the frame boundary"
    assert got == {(0, 0): 3, (1, 1): 3}, f"each 2×2 frame gives 3 windows of its own codes, got {got}"
    raster = as_dict(*ngram_counts(np.array([[[0, 1], [2, 3]]]), 2, 4), 2, 4)
    assert raster == {(0, 1): 1, (1, 2): 1, (2, 3): 1}, "inside a frame, windows run on past a row's end"


def test_keys_decode_back_in_base_v():
    rng = np.random.default_rng(1)
    vocab, n = 37, 4
    grams = rng.integers(0, vocab, (100, n))
    keys = (grams * vocab ** np.arange(n - 1, -1, -1)).sum(axis=1)  # first token most significant
    assert np.array_equal(decode_ngram_keys(keys, n, vocab), grams), "decoding should invert the encoding"
    ids = rng.integers(0, vocab, (5, 3, 3))
    keys, _ = ngram_counts(ids, n, vocab)
    decoded = [tuple(g) for g in decode_ngram_keys(keys, n, vocab).tolist()]
    assert decoded == sorted(decoded), "key order should be the lexicographic order of the n-grams"


def test_stats_entropy_frequency_and_summary_numbers():
    rng = np.random.default_rng(2)
    ids = structured_ids(rng, frames=25, vocab=9)
    stats = ngram_stats(ids, 9, ns=(3, 1, 2), name="grad")
    assert list(stats["n"].values) == [1, 2, 3], "n should be sorted ascending"
    for n in (1, 2, 3):
        ref = reference_counts(ids, n)
        p = np.array(list(ref.values())) / sum(ref.values())
        direct = -(p * np.log2(p)).sum()
        one = stats.sel(n=n)
        assert math.isclose(float(one["entropy"]), direct, rel_tol=1e-12), f"{n}-gram entropy is off"
        assert int(one["distinct"]) == len(ref) and int(one["total"]) == sum(ref.values())
        assert float(one["possible"]) == 9.0**n and math.isclose(float(one["coverage"]), len(ref) / 9**n)
        freq = one["frequency"].values
        valid = freq[~np.isnan(freq)]
        assert len(valid) == len(ref) and np.all(np.isnan(freq[len(ref) :])), "NaN should pad past the end"
        assert np.all(np.diff(valid) <= 0), "frequency should fall with rank"
        assert math.isclose(valid.sum(), 1.0), "relative frequencies should sum to 1"
        top = one["count"].values[: len(ref)].tolist()
        assert top == sorted(ref.values(), reverse=True), "count should hold the counts, largest first"
    assert stats["rank"].values[0] == 1, "ranks are 1-based"
    assert stats.attrs == {"name": "grad", "vocab_size": 9, "frames": 25, "grid": [4, 5]}


def test_dead_codes_and_codebook_usage():
    ids = np.array([[[0, 3], [7, 7]], [[3, 3], [0, 7]]])  # codes 0, 3, 7 of 10
    stats = ngram_stats(ids, 10, ns=(2,))
    assert int(stats["dead_codes"]) == 7, "7 of 10 codes never appear"
    assert float(stats["codebook_usage"]) == pytest.approx(0.3), "3 of 10 codes are used"


def test_compare_aligns_tokenizers_of_different_vocab_sizes():
    rng = np.random.default_rng(3)
    small = ngram_stats(rng.integers(0, 16, (30, 4, 4)), 16, ns=(1, 2), name="vq-16")
    large = ngram_stats(rng.integers(0, 300, (20, 3, 3)), 300, ns=(1, 2, 3), name="vq-300")
    both = compare_ngram_stats([small, large])
    assert list(both["tokenizer"].values) == ["vq-16", "vq-300"], "one entry per tokenizer, in order"
    longest = max(small.sizes["rank"], large.sizes["rank"])
    assert list(both["n"].values) == [1, 2, 3] and both.sizes["rank"] == longest, "n, rank outer-joined"
    assert list(both["vocab_size"].values) == [16, 300] and list(both["grid"].values) == ["4x4", "3x3"]
    for ds in (small, large):
        one = both.sel(tokenizer=ds.attrs["name"], n=ds["n"], rank=ds["rank"])
        np.testing.assert_array_equal(one["frequency"].values, ds["frequency"].values)
    assert np.all(np.isnan(both["entropy"].sel(tokenizer="vq-16", n=3))), "vq-16 has no 3-grams: NaN"
    shorter = min(small, large, key=lambda ds: ds.sizes["rank"])
    tail = both["frequency"].sel(tokenizer=shorter.attrs["name"]).values[:, shorter.sizes["rank"] :]
    assert tail.size and np.all(np.isnan(tail)), "the shorter curves should be padded with NaN"
    with pytest.raises(AnalysisError, match="names must differ"):
        compare_ngram_stats([small, small])


def test_rank_figure_one_log_line_per_tokenizer():
    rng = np.random.default_rng(4)
    big = ngram_stats(rng.integers(0, 4096, (400, 8, 8)), 4096, ns=(2,), name="wide")
    small = ngram_stats(rng.integers(0, 8, (50, 4, 4)), 8, ns=(2,), name="narrow")
    fig = ngram_rank_figure(compare_ngram_stats([big, small]), n=2)
    assert len(fig.data) == 2, "one trace per tokenizer"
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log", "both axes should be log"
    assert (fig.layout.xaxis.title.text, fig.layout.yaxis.title.text) == ("rank", "frequency")
    for trace in fig.data:
        y = np.asarray(trace.y, dtype=float)
        assert np.all(np.isfinite(y)) and np.all(y > 0), "a log axis needs strictly positive frequencies"
    wide = fig.data[0]
    distinct = int(big["distinct"].sel(n=2))
    assert wide.name == f"wide ({distinct:,} distinct 2-grams)", f"legend should give the count: {wide.name}"
    assert len(wide.x) <= MAX_POINTS < distinct, "a long curve should be downsampled"
    assert wide.x[0] == 1 and wide.x[-1] == distinct, "downsampling keeps the first and the last rank"
    assert len(ngram_rank_figure(small, n=2).data) == 1, "a single Dataset gives one line"
    with pytest.raises(FigureError, match="no 3-gram"):
        ngram_rank_figure(small, n=3)
    summary = ngram_summary_figure(compare_ngram_stats([big, small]))
    assert len(summary.data) == 4, "entropy and coverage bars for each of the two tokenizers"


def test_the_ngram_pass_reports_each_length_it_counts():
    events = []
    ngram_stats(np.arange(8).reshape(2, 2, 2), 8, ns=(1, 2), name="t", progress=events.append)
    assert [(e.task, e.done, e.total, e.info["n"]) for e in events] == [
        ("n-grams t", 1, 2, 1), ("n-grams t", 2, 2, 2)
    ], events  # fmt: skip


def test_write_figure_self_contained_atomic_and_strict(tmp_path, monkeypatch):
    fig = ngram_rank_figure(ngram_stats(np.arange(8).reshape(2, 2, 2), 8, ns=(1,), name="t"), n=1)
    html = write_figure(fig, tmp_path / "out" / "fig.html")
    text = html.read_text(encoding="utf-8")
    # plotly.js itself mentions cdn.plot.ly once, as the default URL of geo maps; what must not be
    # there is a script *loaded* from the network.
    assert "<script src=" not in text.replace('<script src="data:', ""), "HTML should load no script"
    assert len(text) > 1_000_000 and "Plotly.newPlot" in text, "plotly.js should be inlined in the HTML"
    data = json.loads(write_figure(fig, tmp_path / "fig.JSON").read_text())
    assert data["data"][0]["name"].startswith("t "), "JSON should hold the figure's traces"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["fig.JSON", "fig.html", "out"], "no temp files"

    def broken(*_):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        write_figure(fig, html)
    assert html.read_text(encoding="utf-8") == text, "a failed write must leave the old file intact"
    assert sorted(p.name for p in html.parent.iterdir()) == ["fig.html"], "a failed write leaves no temp"
    with pytest.raises(FigureError, match=r"\.html, \.json"):
        write_figure(fig, tmp_path / "fig.png")


@pytest.mark.parametrize(
    "ids, n, vocab, words",
    [
        (np.zeros((4, 4), int), 1, 8, "[frame, row, col]"),
        (np.zeros((2, 2, 2), float), 1, 8, "integer dtype"),
        (np.full((2, 2, 2), 8), 1, 8, "[0, 8)"),
        (np.full((2, 2, 2), -1), 1, 8, "[0, 8)"),
        (np.zeros((2, 2, 2), int), 0, 8, "n must lie in [1, 4]"),
        (np.zeros((2, 2, 2), int), 5, 8, "n must lie in [1, 4]"),
        (np.zeros((2, 2, 2), int), 1, 0, "vocab_size must be positive"),
        (np.zeros((2, 2, 2), int), 2, 2**32, "int64"),
        (np.zeros((0, 2, 2), int), 1, 8, "no tokens"),
    ],
)
def test_bad_input_raises_one_clear_line(ids, n, vocab, words):
    with pytest.raises(AnalysisError) as info:
        ngram_counts(ids, n, vocab)
    assert isinstance(info.value, ValueError) and isinstance(info.value, TotoLensError)
    message = str(info.value)
    assert words in message and "\n" not in message, f"unclear message: {message!r}"
    with pytest.raises(AnalysisError):
        ngram_stats(ids, vocab, ns=(n,))


def test_layers_do_not_import_what_they_must_not():
    code = (
        "import sys, toto_lens.figures, toto_lens.analysis\n"
        "assert 'plotly' not in sys.modules, 'importing the packages should load no plotly'\n"
        "import toto_lens.analysis.ngrams\n"
        "bad = {'torch', 'zarr', 'plotly'} & set(sys.modules)\n"
        "assert not bad, f'analysis imports {bad}'\n"
        "import toto_lens.figures.ngrams\n"
        "bad = {'torch', 'zarr'} & set(sys.modules)\n"
        "assert not bad, f'figures import {bad}'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
