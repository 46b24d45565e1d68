"""Attention figures: one query's map over the frames, heads by distance and mass, frame-to-frame matrices."""

import numpy as np
import pytest
import xarray as xr

from toto_lens.figures import FigureError, write_figure
from toto_lens.figures.attention import frame_mass_figure, head_summary_figure, query_attention_figure

F, R, C, H, W = 5, 4, 4, 16, 16


def query_weights(query):
    """(F, R, C) weights with NaN after the query, as `query_map` returns them."""
    w = np.random.default_rng(0).random((F, R, C))
    flat = w.reshape(-1)
    flat[np.ravel_multi_index(query, (F, R, C)) + 1 :] = np.nan
    return w / np.nansum(w) * 0.7


def summary(layers=(1, 2, 3), heads=4):
    rng = np.random.default_rng(1)
    shape = (len(layers), heads)
    mass = rng.random((*shape, F, F)) * np.tril(np.ones((F, F)))
    data = {
        k: (("layer", "head"), rng.random(shape))
        for k in ("sink_mass", "own_frame_mass", "earlier_frames_mass")
    }
    data["frame_distance"] = (("layer", "head"), rng.random(shape) * 3)
    data["frame_mass"] = (("layer", "head", "qframe", "kframe"), mass)
    return xr.Dataset(data, coords={"layer": list(layers), "head": np.arange(heads)})


def test_the_query_map_shows_the_frames_up_to_the_query_with_one_colour_scale(tmp_path):
    query = (3, 1, 2)
    frames = np.random.default_rng(2).random((F, H, W))
    fig = query_attention_figure(frames, query_weights(query), query, 0.3)
    images = [t for t in fig.data if t.type == "image"]
    maps = [t for t in fig.data if t.type == "heatmap"]
    assert len(images) == len(maps) == 4, "frames 0 … 3: up to the query's frame, not after it"
    assert all(m.coloraxis == "coloraxis" for m in maps), "every frame's map shares one colour scale"
    assert fig.layout.coloraxis.cmin == 0 and fig.layout.coloraxis.cmax == pytest.approx(
        np.nanmax(query_weights(query)[:4])
    )
    last = np.asarray(maps[-1].z, dtype=float)
    assert np.isnan(last.ravel()[1 * C + 2 + 1 :]).all(), "keys after the query stay NaN (cannot see)"
    assert maps[0].x[0] == pytest.approx(W / C / 2 - 0.5), "token cells are drawn at pixel scale"
    rect = fig.layout.shapes[0]
    assert (rect.x0, rect.x1, rect.y0, rect.y1) == (7.5, 11.5, 3.5, 7.5), "the query token is outlined"
    assert rect.xref == "x4", "on the query's own frame"
    assert "sink) mass 0.300" in fig.layout.title.text, "the sink mass is in the title"
    assert "frame 3 (query)" in fig.layout.annotations[3].text, "the query's frame is named"
    assert all(im.source.startswith("data:image/png;base64,") for im in images), "frames as PNG, not JSON"
    assert write_figure(fig, tmp_path / "q.html").stat().st_size > 0


def test_the_query_map_refuses_shapes_that_do_not_fit():
    with pytest.raises(FigureError, match="expected frames"):
        query_attention_figure(np.zeros((F, H, W)), np.zeros((F + 1, R, C)), (0, 0, 0), 0.0)
    with pytest.raises(FigureError, match="outside the grid"):
        query_attention_figure(np.zeros((F, H, W)), np.zeros((F, R, C)), (0, R, 0), 0.0)


def test_the_head_summary_has_one_point_per_head_named_by_layer_and_head():
    s = summary()
    fig = head_summary_figure(s)
    assert len(fig.data) == 2 and all(len(t.x) == 12 for t in fig.data), (
        "one point per (layer, head) per panel"
    )
    assert fig.data[0].text[5] == "L2.H1", "hover names the head L<layer>.H<head>, layer-major"
    assert fig.data[0].y[5] == s["sink_mass"].sel(layer=2, head=1), "points sit at their head's numbers"
    assert (
        fig.layout.xaxis.title.text.startswith("frame_distance")
        and fig.layout.yaxis.title.text == "sink_mass"
    )
    assert fig.layout.xaxis2.title.text == "own_frame_mass", "axes are named after the variables"
    with pytest.raises(FigureError, match="lacks"):
        head_summary_figure(s.drop_vars("sink_mass"))


def test_frame_mass_matrices_are_small_multiples_with_the_future_blank():
    s = summary()
    fig = frame_mass_figure(s)
    assert len(fig.data) == 12 and fig.layout.annotations[5].text == "L2.H1", "layer × head panels"
    z = np.asarray(fig.data[0].z, dtype=float)
    assert np.isnan(z[np.triu_indices(F, 1)]).all(), "key frames after the query frame are blank, not 0"
    assert fig.layout.yaxis.title.text == "qframe" and fig.layout.xaxis9.title.text == "kframe"
    one = frame_mass_figure(s, layers=[3])
    assert len(one.data) == 4, "a chosen layer: one row of heads"
    many = summary(layers=tuple(range(1, 18)), heads=4)
    assert len(frame_mass_figure(many).data) == 4, "more than 64 panels: only the middle layer"
    with pytest.raises(FigureError, match="has layers"):
        frame_mass_figure(s, layers=[9])
