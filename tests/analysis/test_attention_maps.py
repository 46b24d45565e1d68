"""Where attention goes: distances and masses per head, frame-to-frame mass, one query's map, head ranking.

Hand-made patterns with known answers (a previous-frame head, a uniform causal head, a sink head), and a
control on random causal patterns: every number stays in its range and the masses add up to one.
"""

import numpy as np
import pytest
import torch
import xarray as xr

from toto_lens.analysis import AnalysisError
from toto_lens.analysis.attention import (
    attention_distances,
    frame_mass,
    frame_mass_summary,
    query_map,
    rank_heads,
)
from toto_lens.data.layout import Layout

LAYOUT = Layout(4, 2, 3)  # T = 4·6 + 2 = 26


def previous_frame_head(layout: Layout) -> np.ndarray:
    """(T, T): (f ≥ 1, r, c) attends only to (f − 1, r, c); everything else to itself."""
    a = np.eye(layout.length)
    for q in np.flatnonzero(layout.frame_of_position >= 1):
        a[q] = 0
        a[q, q - layout.tokens_per_frame] = 1
    return a


def uniform_head(length: int) -> np.ndarray:
    return np.tril(np.ones((length, length))) / np.arange(1, length + 1)[:, None]


def random_causal(rng, shape, length):
    scores = rng.normal(size=(*shape, length, length)) * 3
    scores[..., ~np.tril(np.ones((length, length), dtype=bool))] = -np.inf
    e = np.exp(scores - scores.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_a_previous_frame_head_looks_one_frame_back_at_the_same_place():
    d = attention_distances(previous_frame_head(LAYOUT)[None], LAYOUT).isel(head=0)
    expected = {"frame_distance": 1, "row_distance": 0, "col_distance": 0, "position_distance": 6,
                "sink_mass": 0, "own_frame_mass": 0, "previous_frame_mass": 1, "earlier_frames_mass": 1,
                "temporality": 1}  # fmt: skip
    for name, value in expected.items():
        assert float(d[name]) == pytest.approx(value), f"{name} of a head on (f − 1, r, c) should be {value}"
    assert d.attrs["queries"] == 18, "queries are the visual tokens of frames ≥ 1 (3 frames × 6)"


def test_a_uniform_causal_head_has_the_analytic_mean_distances():
    a = uniform_head(LAYOUT.length)
    d = attention_distances(a[None], LAYOUT).isel(head=0)
    f, r, c = LAYOUT.frame_of_position, LAYOUT.row_of_position, LAYOUT.col_of_position
    per_query = {k: [] for k in ("frame", "row", "col", "position", "sink", "own", "earlier")}
    for q in range(1, LAYOUT.length - 1):
        if f[q] < 1:
            continue
        keys = np.arange(1, q + 1)  # the visual keys it sees, equally weighted once renormalised
        per_query["frame"].append(np.mean(f[q] - f[keys]))
        per_query["row"].append(np.mean(np.abs(r[q] - r[keys])))
        per_query["col"].append(np.mean(np.abs(c[q] - c[keys])))
        per_query["position"].append(np.mean(q - keys))
        per_query["sink"].append(1 / (q + 1))
        per_query["own"].append(np.sum(f[keys] == f[q]) / (q + 1))
        per_query["earlier"].append(np.sum(f[keys] < f[q]) / (q + 1))
    for name in ("frame", "row", "col", "position"):
        assert float(d[f"{name}_distance"]) == pytest.approx(np.mean(per_query[name])), (
            f"{name} distance of a uniform head should be the mean over queries of the mean over keys"
        )
    for got, want in (("sink_mass", "sink"), ("own_frame_mass", "own"), ("earlier_frames_mass", "earlier")):
        assert float(d[got]) == pytest.approx(np.mean(per_query[want])), f"{got}: raw weights, averaged"


def test_a_sink_head_puts_all_its_mass_on_the_start_token():
    a = np.zeros((LAYOUT.length, LAYOUT.length))
    a[:, 0] = 1
    d = attention_distances(a[None], LAYOUT).isel(head=0)
    assert float(d["sink_mass"]) == 1, "all weight on position 0 is sink mass 1"
    assert float(d["own_frame_mass"]) == 0 and float(d["earlier_frames_mass"]) == 0, "no visual mass"
    assert np.isnan(d["frame_distance"]), "no visual key is attended: the distance is undefined, not 0"
    first = attention_distances(a[None], LAYOUT, min_frame=0).isel(head=0)
    assert float(first["previous_frame_mass"]) == 0, "frame 0 has no previous frame: the start token is none"


def test_random_patterns_stay_in_range_and_tensors_give_the_numbers_arrays_give():
    rng = np.random.default_rng(0)
    a = random_causal(rng, (3, 4), LAYOUT.length)  # (layer, head, T, T)
    d = attention_distances(a, LAYOUT, chunk=5)
    assert d["frame_distance"].dims == ("layer", "head"), "a plain array's axes are named …, layer, head"
    limits = {"frame_distance": 3, "row_distance": 1, "col_distance": 2, "position_distance": LAYOUT.length}
    for name, top in limits.items():
        assert ((d[name] >= 0) & (d[name] <= top)).all(), f"{name} outside [0, {top}]"
    total = d["sink_mass"] + d["own_frame_mass"] + d["earlier_frames_mass"]
    np.testing.assert_allclose(total, 1, err_msg="sink + own + earlier frames is all of a causal row")
    assert (d["previous_frame_mass"] <= d["earlier_frames_mass"] + 1e-12).all(), "previous ⊂ earlier"
    t = attention_distances(torch.as_tensor(a, dtype=torch.float32), LAYOUT)
    for name in d.data_vars:
        np.testing.assert_allclose(t[name], d[name], rtol=1e-4, err_msg=f"{name}: tensor ≠ array")
    whole = attention_distances(a, LAYOUT, chunk=1000)
    xr.testing.assert_allclose(whole, d)  # chunking the queries changes nothing


def test_a_labelled_pattern_keeps_its_dims_and_a_cut_pattern_is_scored_on_what_it_holds():
    a = random_causal(np.random.default_rng(1), (2, 2), LAYOUT.length)
    da = xr.DataArray(a, dims=("clip", "head", "qpos", "kpos"), coords={"clip": [7, 9]})
    d = attention_distances(da, LAYOUT)
    assert d["sink_mass"].dims == ("clip", "head") and d["clip"].values.tolist() == [7, 9], "dims kept"
    cut = attention_distances(a[..., :14, :14], LAYOUT)  # a context shorter than the clip
    assert cut.attrs["queries"] == 7, "only the queries inside the pattern (frame 1: 7 … 12, frame 2: 13)"
    with pytest.raises(AnalysisError, match="dims"):
        attention_distances(np.zeros((1, 1, 1, 1, 26, 26)), LAYOUT)


def test_the_query_map_is_nan_exactly_after_the_query():
    a = random_causal(np.random.default_rng(2), (), LAYOUT.length)
    query = (2, 1, 0)
    q = LAYOUT.position(*query)
    m = query_map(a[q], LAYOUT, query)
    assert m.dims == ("kframe", "row", "col") and m.shape == (4, 2, 3)
    flat = m.values.ravel()  # position p ↦ flat index p − 1
    assert np.isfinite(flat[:q]).all() and np.isnan(flat[q:]).all(), "NaN exactly for keys after the query"
    np.testing.assert_allclose(flat[:q], a[q, 1 : q + 1], err_msg="the weights are the row's, in place")
    assert m.attrs["sink"] == pytest.approx(a[q, 0]) and m.attrs["query"] == [2, 1, 0], m.attrs
    assert np.nansum(flat) + m.attrs["sink"] == pytest.approx(1), "sink plus the map is the whole row"
    assert query_map(a[q], LAYOUT, q).equals(m), "a position names the same query"
    with pytest.raises(AnalysisError, match="not a visual token"):
        query_map(a[0], LAYOUT, 0)


def test_frame_mass_is_the_extractors_attn_frame_and_its_summary_reads_it_per_head():
    from toto_lens.run.reduce import frame_attention

    a = random_causal(np.random.default_rng(3), (2, 3), LAYOUT.length)  # (clip, head, T, T)
    mine = frame_mass(a, LAYOUT, dims=("clip", "head"))
    theirs = frame_attention(torch.as_tensor(a, dtype=torch.float32), LAYOUT).numpy()
    np.testing.assert_allclose(mine, theirs, rtol=1e-5, err_msg="frame mass should be the cache's attn_frame")

    heads = np.stack([previous_frame_head(LAYOUT), uniform_head(LAYOUT.length)])  # (head, T, T)
    per_head = frame_mass(heads, LAYOUT, dims=["head"]).values  # (head, qframe, kframe)
    attn = np.stack([np.full_like(per_head, np.nan), per_head])[None]  # (clip, layer 0 NaN, head, q, k)
    cache = xr.DataArray(attn, dims=("clip", "layer", "head", "qframe", "kframe"), coords={"layer": [0, 1]})
    s = frame_mass_summary(cache)
    assert s["layer"].values.tolist() == [1], "layer 0 has no attention and is dropped"
    prev = s.sel(layer=1, head=0)
    assert (float(prev["previous_frame_mass"]), float(prev["own_frame_mass"])) == (1, 0), (
        "previous-frame head"
    )
    assert float(prev["sink_mass"]) == pytest.approx(0) and float(prev["temporality"]) == 1
    uni = s.sel(layer=1, head=1)
    f = LAYOUT.frame_of_position
    q = np.flatnonzero(f >= 1)  # each query of frames ≥ 1, its own frame's mass under uniform attention
    own = np.mean([np.sum(f[1 : p + 1] == f[p]) / (p + 1) for p in q])
    assert float(uni["own_frame_mass"]) == pytest.approx(own), "own-frame mass over query frames ≥ 1"
    assert float(uni["sink_mass"]) == pytest.approx(np.mean(1 / (q + 1))), "sink = 1 − the row sum"
    assert s["temporal_rank"].sel(head=0).item() == 0, "the previous-frame head is the most temporal"


def test_rank_heads_sorts_temporal_and_local_heads_and_refuses_an_unknown_key():
    t = np.array([[0.1, 0.9], [np.nan, 0.5]])
    s = xr.Dataset({"temporality": (("layer", "head"), t), "position_distance": (("layer", "head"), t * 10)},
                   coords={"layer": [1, 2], "head": [0, 1]})  # fmt: skip
    temporal = rank_heads(s, "temporal")
    pairs = list(zip(temporal["layer"].values.tolist(), temporal["head"].values.tolist(), strict=True))
    assert pairs == [(1, 1), (2, 1), (1, 0), (2, 0)], f"most temporal first, NaN last: {pairs}"
    local = rank_heads(s, "local", top=2)
    assert local["temporality"].values.tolist() == [0.1, 0.5], "local: own-frame heads first, top 2 kept"
    near = rank_heads(s, "position_distance", ascending=True, top=1)
    assert near["position_distance"].item() == 1.0, "ascending sorts the smallest first"
    with pytest.raises(AnalysisError, match="cannot rank"):
        rank_heads(s, "nothing")
