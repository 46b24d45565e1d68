"""The attention-map explorer: where one query token looks, over every frame of a clip, live.

Clip, layer, head and the query's (frame, row, col) are sliders; clicking a token on any frame makes it
the query. The figure is the one `studies.attention` draws (`figures.attention.query_attention_figure`),
built once with every frame of the clip and then updated in place: each frame's pixels and weights, the
query's outline, the per-frame shares and the colour scale. Patterns come from the store's
`attn_pattern` when it holds the clip, otherwise from the model on that one clip (`run.attention`),
and are kept per (clip, layer), so moving the head or the query costs no forward pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from toto_lens.store.reader import cache_checkpoint_path, cache_tokenizer
from toto_lens.widgets.base import Explorer, WidgetError, open_explorer_cache
from toto_lens.widgets.clips import decode_clip


class AttentionExplorer(Explorer):
    """Controls `clip`, `layer`, `head`, `qframe`, `qrow`, `qcol`; figure `figure`; `source` says where the
    current pattern came from ("store" or "live")."""

    def __init__(self, cache: Any, clip: int | None = None, layer: int | None = None, head: int = 0,
                 query: tuple[int, int, int] | None = None, columns: int = 8,
                 trust_code: bool = False) -> None:  # fmt: skip
        import ipywidgets as W
        import plotly.graph_objects as go

        from toto_lens.checkpoints import load_checkpoint
        from toto_lens.data.layout import layout_of
        from toto_lens.figures.attention import query_attention_figure

        super().__init__()
        self.ds = open_explorer_cache(cache)
        self.layout = lo = layout_of(self.ds)
        self.model = load_checkpoint(cache_checkpoint_path(self.ds), trust_code=trust_code).model
        self.tokenizer = cache_tokenizer(self.ds, trust_code=trust_code)
        cfg = self.model.config
        clips = [int(c) for c in self.ds["clip"].values]
        if not clips:
            raise WidgetError("the cache holds no complete clip to explore")
        q = query or (lo.frames - 1, lo.rows // 2, lo.cols // 2)
        slider = lambda name, lo_, hi, value: W.IntSlider(value=value, min=lo_, max=hi, description=name,  # noqa: E731
                                                          continuous_update=False)  # fmt: skip
        self.clip = W.Dropdown(options=clips, value=clips[0] if clip is None else clip, description="clip")
        self.layer = slider("layer", 1, cfg.n_layers, (cfg.n_layers + 1) // 2 if layer is None else layer)
        self.head = slider("head", 0, cfg.n_heads - 1, head)
        self.qframe = slider("query frame", 0, lo.frames - 1, q[0])
        self.qrow = slider("query row", 0, lo.rows - 1, q[1])
        self.qcol = slider("query col", 0, lo.cols - 1, q[2])
        self.controls = {n: getattr(self, n) for n in ("clip", "layer", "head", "qframe", "qrow", "qcol")}
        self._patterns: dict[tuple[int, int], tuple[np.ndarray, str]] = {}
        self._pixels: dict[int, np.ndarray] = {}
        self.source = ""
        # Built once over every frame (the query put on the last one), then set to the real query.
        empty = np.full((lo.frames, lo.rows, lo.cols), np.nan)
        empty[-1, 0, 0] = 0.0
        start = query_attention_figure(self._frames(self.clip.value), empty, (lo.frames - 1, 0, 0), 0.0,
                                       columns=columns)  # fmt: skip
        self.figure = go.FigureWidget(start)
        self.figures = {"figure": self.figure}
        for trace in self.figure.data[1::2]:  # the heatmaps: a click picks the query
            trace.on_click(self._clicked)
        for control in self.controls.values():
            self._observe(control, self.update)
        self.note = W.HTML()
        sliders = W.VBox([W.HBox([self.clip, self.layer, self.head]),
                          W.HBox([self.qframe, self.qrow, self.qcol])])  # fmt: skip
        self.widget = W.VBox([sliders, self.figure, self.note])
        self.update()

    def _frames(self, clip: int) -> np.ndarray:
        if clip not in self._pixels:
            tokens = self.ds["tokens"].sel(clip=clip).values
            self._pixels[clip] = decode_clip(tokens, self.layout, self.tokenizer)
        return self._pixels[clip]

    def pattern(self, clip: int, layer: int) -> tuple[np.ndarray, str]:
        """(head, qpos, kpos) of one clip and layer, and "store" or "live"; kept once computed."""
        key = (clip, layer)
        if key not in self._patterns:
            ds = self.ds
            if "attn_pattern" in ds and layer in ds["layer"].values:
                stored = ds["attn_pattern"].sel(clip=clip, layer=layer).values.astype(np.float32)
                if np.isfinite(stored).all():
                    self._patterns[key] = stored, "store"
            if key not in self._patterns:
                from toto_lens.run.attention import clip_patterns

                live = clip_patterns(self.model, ds["tokens"].sel(clip=clip).values, [layer])
                self._patterns[key] = live.sel(layer=layer).values, "live"
        return self._patterns[key]

    def _clicked(self, trace: Any, points: Any, _selector: Any) -> None:
        if not points.point_inds:
            return
        frame = list(self.figure.data).index(trace) // 2
        row, col = points.point_inds[0]  # a heatmap's point index is (row, col) of its z
        with self.hold():
            self.qframe.value, self.qrow.value, self.qcol.value = frame, int(row), int(col)

    def update(self) -> None:
        from toto_lens.analysis.attention import query_map
        from toto_lens.figures.attention import HIDDEN, png_source

        lo, clip = self.layout, int(self.clip.value)
        query = (int(self.qframe.value), int(self.qrow.value), int(self.qcol.value))
        patterns, self.source = self.pattern(clip, int(self.layer.value))
        position = lo.position(*query)
        weights = query_map(patterns[int(self.head.value), position], lo, query)
        w, pixels = weights.values, self._frames(clip)
        (_, H, Wd), (R, C) = pixels.shape, (lo.rows, lo.cols)
        ph, pw = H / R, Wd / C
        token_rows, token_cols = np.arange(H) * R // H, np.arange(Wd) * C // Wd
        top = float(np.nanmax(w)) if np.isfinite(w).any() else 1.0
        fig = self.figure
        with fig.batch_update():
            for f in range(lo.frames):
                hidden = np.isnan(w[f])[np.ix_(token_rows, token_cols)]
                fig.data[2 * f].source = png_source(np.where(hidden, HIDDEN, 1) * pixels[f])
                fig.data[2 * f + 1].z = w[f]
                mark = " (query)" if f == query[0] else ""
                fig.layout.annotations[f].text = f"frame {f}{mark}<br>{float(np.nansum(w[f])):.3f}"
            axis = "" if query[0] == 0 else str(query[0] + 1)
            fig.layout.shapes[0].update(xref=f"x{axis}", yref=f"y{axis}", x0=query[2] * pw - 0.5,
                                        x1=(query[2] + 1) * pw - 0.5, y0=query[1] * ph - 0.5,
                                        y1=(query[1] + 1) * ph - 0.5)  # fmt: skip
            fig.layout.coloraxis.cmax = max(top, 1e-6)
            fig.layout.title.text = (
                f"clip {clip}, layer {self.layer.value} head {self.head.value}: query (frame {query[0]}, "
                f"row {query[1]}, col {query[2]}), start-token (sink) mass {weights.attrs['sink']:.3f}"
                f"<br><sup>click a token to make it the query; dimmed: tokens after the query; pattern "
                f"from the {'store' if self.source == 'store' else 'model (live)'}</sup>"
            )
        self.note.value = f"query at position {position}; weight on earlier frames {float(np.nansum(w)):.3f}"


def attention_explorer(cache: Any, **options: Any) -> AttentionExplorer:
    """An `AttentionExplorer` on a cache (an opened Dataset, a store path or a checkpoint name); options:
    clip, layer, head, query=(frame, row, col), columns (frames per row)."""
    return AttentionExplorer(cache, **options)
