"""The attention-map explorer: controls and clicks move the query, the figure's traces change in place
to the weights an independent computation gives, from the store or live."""

import numpy as np
import pytest
import torch
from extract_helpers import make_checkpoint
from helpers import reference_patterns

from toto_lens import load_checkpoint, open_cache
from toto_lens.data.layout import layout_of
from toto_lens.run import extract


@pytest.fixture
def cache():
    make_checkpoint("att")
    extract("att", clips=4, batch_size=2, acts=("pooled",), attn=("frame", "pattern"), pattern_clips=2)
    return open_cache("att")


def expected_weights(clip, layer, head, query, ds):
    """The query's weights over (frame, row, col), recomputed from the weights without hooks."""
    model = load_checkpoint("att").model
    tokens = torch.as_tensor(ds["tokens"].sel(clip=clip).values[None].astype(np.int64))
    with torch.no_grad():
        row = reference_patterns(model, tokens)[0][layer - 1][0, head].numpy()
    lo = layout_of(ds)
    q = lo.position(*query)
    out = np.full(lo.frames * lo.tokens_per_frame, np.nan)
    out[:q] = row[q, 1 : q + 1]
    return out.reshape(lo.frames, lo.rows, lo.cols)


def test_controls_move_the_query_and_update_the_figure_in_place(cache):
    from toto_lens.widgets.attention import attention_explorer

    e = attention_explorer(cache, clip=0, layer=1, head=0, query=(2, 1, 1))
    fig, first_trace = e.figure, e.figure.data[1]
    assert e.source == "store", "clip 0 has a stored pattern: it must be read, not recomputed"
    with e.hold():
        e.head.value, e.qframe.value = 1, 3
    got = np.stack([np.array(fig.data[2 * f + 1].z, dtype=float) for f in range(16)])
    want = expected_weights(0, 1, 1, (3, 1, 1), cache)
    np.testing.assert_allclose(got, want, atol=2e-3, err_msg="the heatmaps are not the query's weights")
    assert fig is e.figure and fig.data[1] is first_trace, "a control change must not rebuild the figure"
    assert fig.layout.shapes[0].xref == "x4", "the query outline must sit on the query's frame (4th panel)"
    assert "(query)" in fig.layout.annotations[3].text and "(query)" not in fig.layout.annotations[2].text


def test_a_clip_without_a_stored_pattern_is_computed_live_and_a_click_picks_the_query(cache):
    from toto_lens.widgets.attention import attention_explorer

    e = attention_explorer(cache, clip=3, layer=2, head=1, query=(3, 0, 0))
    assert e.source == "live", "clip 3 has no stored pattern (pattern_clips=2)"

    class Points:  # what plotly hands a click callback: the heatmap cell as (row, col)
        point_inds = [(2, 3)]

    e._clicked(e.figure.data[2 * 1 + 1], Points(), None)
    assert (e.qframe.value, e.qrow.value, e.qcol.value) == (1, 2, 3), "a click on frame 1 sets the query"
    got = np.stack([np.array(e.figure.data[2 * f + 1].z, dtype=float) for f in range(16)])
    np.testing.assert_allclose(got, expected_weights(3, 2, 1, (1, 2, 3), cache), atol=1e-5)
    assert np.isnan(got[2:]).all(), "frames after the query's must read 'cannot see' (NaN), not 0"
