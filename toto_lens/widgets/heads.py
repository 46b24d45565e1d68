"""`head_explorer`: the (layer, head) grid of a head score (Olsson et al. 2022; Toto appendix A.3) and,
for the head picked on it, what that head attends to on a clip of the cache.

Click a cell of the grid, or set `layer` and `head`. The head's pattern is read from the store's
`attn_pattern` when the store holds it for that clip (the first `pattern_clips` clips) and was extracted
from the same checkpoint as the scores; otherwise it is computed for that clip alone through
`run.hooks.capture` on `blocks.{layer-1}.attn.hook_pattern` (cache layer l ≥ 1 is block l − 1). Each
(clip, layer) pattern is kept once computed. Shown: the rows of the queries of one frame (`qframe`)
against every key up to that frame's end (a whole long-context pattern is too large to redraw at
slider speed), and the attention mass from frame to frame over the whole clip.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

from toto_lens.io import dict_attr
from toto_lens.widgets.base import Explorer, WidgetError, cache_of_result, figure_widget, result_of

KEPT_BYTES = 512 * 2**20  # patterns kept in memory, the latest always


class HeadExplorer(Explorer):
    """Controls `score`, `layer`, `head`, `clip` (index into the cache's clips), `qframe`; figures `grid`
    (score per layer × head, clickable), `pattern` (queries of `qframe` × keys) and `frames` (frame-to-
    frame mass); `source` says where the pattern shown came from ("store" or "model"); `info` (text)."""

    def __init__(self, scores: Any, ds: Any = None, *, clip: int = 0, trust_code: bool = False):
        import ipywidgets as w

        from toto_lens.analysis.induction import SCORES
        from toto_lens.data.layout import layout_of

        super().__init__()
        self.scores, self.cache = scores, ds
        names = [k for k in SCORES if k in scores and np.isfinite(scores[k].values).any()]
        if not names:
            raise WidgetError("this induction result holds no finite score")
        self.layers = [int(v) for v in scores["layer"].values if int(v) >= 1]
        self.heads = heads = [int(v) for v in scores["head"].values]
        self.score = w.Dropdown(options=names, value=names[0], description="score")
        best = np.unravel_index(np.nanargmax(self._z(names[0])), self._z(names[0]).shape)
        self.layer = w.SelectionSlider(options=[(str(v), v) for v in self.layers],
                                       value=self.layers[best[0]], description="layer")  # fmt: skip
        self.head = w.SelectionSlider(
            options=[(str(v), v) for v in heads], value=heads[best[1]], description="head"
        )
        self.layout = layout_of(ds) if ds is not None else None
        clips = ds.sizes["clip"] if ds is not None else 1
        frames = self.layout.frames if self.layout is not None else 1
        # On release only: a clip not in the store costs a forward pass, one per clip dragged over otherwise.
        self.clip = w.IntSlider(min(clip, clips - 1), 0, clips - 1, description="clip", disabled=ds is None,
                                continuous_update=False)  # fmt: skip
        self.qframe = w.IntSlider(min(1, frames - 1), 0, frames - 1, description="query frame",
                                  disabled=ds is None, style={"description_width": "initial"})  # fmt: skip
        self.info = w.HTML()
        self.source = None
        self._patterns: OrderedDict[tuple[int, int], tuple[np.ndarray, str]] = OrderedDict()
        self._mass: dict[tuple[int, int, int], np.ndarray] = {}
        self._token_chunk: tuple[int, np.ndarray | None] = (-1, None)
        self._model = None
        self._trust_code = trust_code  # load a checkpoint whose tokenizer names code (`--trust-code`)
        self._model_ref, self._store_ok = self._where_patterns_come_from()
        self.grid = figure_widget(width=460, height=max(320, 90 + 36 * len(self.layers)))
        self.grid.add_heatmap(x=heads, y=self.layers, zmin=0, zmax=1, colorscale="Viridis",
                              colorbar={"title": {"text": "score"}},
                              hovertemplate="layer %{y} head %{x}<br>%{z:.3f}<extra></extra>")  # fmt: skip
        self.grid.add_scatter(mode="markers", hoverinfo="skip", showlegend=False,
                              marker={"symbol": "square-open", "size": 26, "color": "red", "line": {"width": 3}})  # fmt: skip
        self.grid.update_xaxes(title_text="head", dtick=1)
        self.grid.update_yaxes(title_text="layer", dtick=1, autorange="reversed")
        self.grid.data[0].on_click(self._clicked)
        self.pattern = figure_widget(width=940, height=380)
        self.pattern.add_heatmap(colorscale="Blues", zmin=0, colorbar={"title": {"text": "weight"}},
                                 hovertemplate="query %{y} · key %{x}<br>%{z:.3f}<extra></extra>")  # fmt: skip
        self.pattern.update_xaxes(title_text="key position (tick: first token of a frame)")
        self.pattern.update_yaxes(title_text="query position", autorange="reversed")
        self.frames = figure_widget(width=460, height=420)
        self.frames.add_heatmap(colorscale="Blues", zmin=0, colorbar={"title": {"text": "mass"}},
                                hovertemplate="query frame %{y} → key frame %{x}<br>%{z:.3f}<extra></extra>")  # fmt: skip
        self.frames.update_xaxes(title_text="key frame", dtick=1)
        self.frames.update_yaxes(title_text="query frame", dtick=1, autorange="reversed")
        self.controls = {"score": self.score, "layer": self.layer, "head": self.head, "clip": self.clip,
                         "qframe": self.qframe}  # fmt: skip
        self.figures = {"grid": self.grid, "pattern": self.pattern, "frames": self.frames}
        self._observe(self.score, self._update_grid)
        for control in (self.layer, self.head, self.clip, self.qframe):
            self._observe(control, self._update_head)
        self.widget = w.VBox([
            w.HBox([self.score, self.layer, self.head]), w.HBox([self.clip, self.qframe]),
            w.HBox([self.grid, self.frames]), self.pattern, self.info,
        ])  # fmt: skip
        self.update()

    def _z(self, name: str) -> np.ndarray:
        return self.scores[name].sel(layer=self.layers).transpose("layer", "head").values

    def _where_patterns_come_from(self) -> tuple[str | None, bool]:
        """(the checkpoint to compute patterns with, whether the store's patterns are that model's)."""
        if self.cache is None:
            return None, False
        recorded = dict_attr(self.cache.attrs, "checkpoint")
        name = self.scores.attrs.get("checkpoint")
        if not name or name == recorded.get("name"):  # the scores are of the model the store came from
            return recorded.get("path") or recorded.get("name"), "attn_pattern" in self.cache
        return str(name), False

    def _clicked(self, trace: Any, points: Any, state: Any) -> None:
        if not points.point_inds:
            return
        with self.hold():  # layer and head together, one redraw
            self.layer.value = int(points.ys[0])
            self.head.value = int(points.xs[0])

    def update(self) -> None:
        self._update_grid()
        self._update_head()

    def _update_grid(self) -> None:
        with self.grid.batch_update():
            self.grid.data[0].z = self._z(self.score.value)
            self.grid.layout.title.text = f"{self.score.value.replace('_', ' ')}: click a head"

    def clip_patterns(self, index: int, layer: int) -> tuple[np.ndarray, str]:
        """(pattern (head, qpos, kpos), "store" or "model") of the clip at `index` and a layer ≥ 1, kept
        once computed."""
        key = (index, layer)
        if key in self._patterns:
            self._patterns.move_to_end(key)
            return self._patterns[key]
        pattern, source = self._stored(index, layer), "store"
        if pattern is None:
            from toto_lens.run.attention import clip_patterns

            tokens = self._tokens(index)[: self.model.config.context_length]
            pattern, source = clip_patterns(self.model, tokens, [layer]).sel(layer=layer).values, "model"
        self._patterns[key] = (pattern, source)
        while len(self._patterns) > 1 and sum(p[0].nbytes for p in self._patterns.values()) > KEPT_BYTES:
            dropped = self._patterns.popitem(last=False)[0]
            self._mass = {k: v for k, v in self._mass.items() if k[:2] != dropped}
        return pattern, source

    def frame_mass(self, index: int, layer: int, head: int) -> np.ndarray:
        """Attention mass from frame to frame (qframe, kframe) of one head on the clip at `index`."""
        key = (index, layer, head)
        if key not in self._mass:
            pattern, _ = self.clip_patterns(index, layer)
            from toto_lens.analysis.attention import frame_mass

            self._mass[key] = frame_mass(pattern[self.heads.index(head)], self.layout).values
        return self._mass[key]

    def _tokens(self, index: int) -> np.ndarray:
        """One clip's tokens, read with the rest of its store chunk (neighbours then cost nothing)."""
        tokens = self.cache["tokens"]
        chunks = tokens.chunks[0] if tokens.chunks else (tokens.sizes["clip"],)
        starts = np.cumsum((0, *chunks))
        chunk = int(np.searchsorted(starts, index, side="right")) - 1
        if self._token_chunk[0] != chunk:
            self._token_chunk = (
                chunk,
                np.asarray(tokens.isel(clip=slice(starts[chunk], starts[chunk + 1])).values),
            )
        return self._token_chunk[1][index - starts[chunk]]

    def _stored(self, index: int, layer: int) -> np.ndarray | None:
        if not self._store_ok or layer not in self.cache["layer"].values:
            return None
        if index >= int(
            dict_attr(self.cache.attrs, "request").get("pattern_clips", self.cache.sizes["clip"])
        ):
            return None  # only the first pattern_clips clips are written; the rest read NaN
        pattern = np.asarray(self.cache["attn_pattern"].isel(clip=index).sel(layer=layer).values)
        return pattern if np.isfinite(pattern[:, -1, :]).all() else None

    @property
    def model(self) -> Any:
        """The model the patterns are computed with, loaded on first need."""
        if self._model is None:
            from toto_lens.checkpoints import load_checkpoint

            self._model = load_checkpoint(self._model_ref, trust_code=self._trust_code).model
        return self._model

    def _update_head(self) -> None:
        layer, head = self.layer.value, self.head.value
        z = self._z(self.score.value)
        value = z[self.layers.index(layer), self.heads.index(head)]
        with self.grid.batch_update():
            self.grid.data[1].update(x=[head], y=[layer])
        if self.cache is None:
            self.pattern.layout.title.text = "no cache to draw a clip from: pass cache=…"
            self.info.value = f"layer {layer} head {head}: {self.score.value} {value:.3f}"
            return
        i, qf, lay = self.clip.value, self.qframe.value, self.layout
        pattern, self.source = self.clip_patterns(i, layer)
        queries = lay.frame_slice(qf)
        end = min(queries.stop, pattern.shape[-1])
        rows = np.asarray(pattern[self.heads.index(head), queries.start : end, :end], dtype=np.float32)
        visual = rows[:, 1:] if rows.shape[1] > 1 else rows
        starts = [lay.frame_slice(f).start for f in range(qf + 1)]
        clip_id = self.cache["clip"].values[i]
        with self.pattern.batch_update():
            self.pattern.data[0].update(z=rows, x=np.arange(end), y=np.arange(queries.start, end),
                                        zmax=float(visual.max()) or 1.0)  # fmt: skip
            self.pattern.update_xaxes(
                tickmode="array", tickvals=starts, ticktext=[f"f{f}" for f in range(qf + 1)]
            )
            self.pattern.layout.title.text = (
                f"layer {layer} head {head} · clip {clip_id} · queries of frame {qf} "
                f"(from the {self.source}; colour up to the largest weight on a visual key)"
            )
        with self.frames.batch_update():
            self.frames.data[0].z = self.frame_mass(i, layer, head)
            self.frames.layout.title.text = f"frame-to-frame attention, layer {layer} head {head}"
        self.info.value = (
            f"layer {layer} head {head}: {self.score.value} {value:.3f}; clip {clip_id}, pattern from the "
            f"{'store (attn_pattern)' if self.source == 'store' else 'model (computed for this clip)'}"
        )


def head_explorer(
    induction_study_or_result: Any, cache: Any = None, *, checkpoint: str | None = None, clip: int = 0
) -> HeadExplorer:
    """Explore an induction study (or its result, e.g. read back from `induction.nc`) head by head.

    cache: the clips to draw patterns on (an opened Dataset, a store path or a checkpoint name); by default
    the store of the result's checkpoint. checkpoint: which one of a result stacked over checkpoints
    (default: the last). clip: the clip shown first.
    """
    scores = result_of(induction_study_or_result, "prefix_matching", "induction")
    if "checkpoint" in scores.dims:
        labels = [str(v) for v in scores["checkpoint"].values]
        label = labels[-1] if checkpoint is None else checkpoint
        if label not in labels:
            raise WidgetError(f"no checkpoint {label!r} in this result; it holds {labels}")
        scores = scores.sel(checkpoint=label)
        scores.attrs = {**scores.attrs, "checkpoint": label}
    return HeadExplorer(scores, cache_of_result(scores, cache), clip=clip)
