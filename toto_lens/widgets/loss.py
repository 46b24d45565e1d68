"""`loss_explorer`: where in a clip the model pays its loss (Toto appendix A.3, Fig. 10), frame by frame.

A clip slider and a frame slider choose one frame; it is drawn as pixels (its tokens decoded by the
cache's tokenizer) under a heatmap of the loss of each of its tokens (`loss` per position, placed on
(frame, row, col) by the cache's layout; the loss at a position is the cost of predicting the token
there). Beside it, the clip's mean loss per frame against the mean (± std) over every clip of the cache:
the first frame costs most, later frames are cheap where the model copies from earlier ones.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

from toto_lens.store.reader import cache_tokenizer
from toto_lens.widgets.base import Explorer, figure_widget, open_explorer_cache
from toto_lens.widgets.clips import decode_clip, frame_grid, frame_means

KEPT_CLIPS = 64  # decoded clips kept, so that going back to a clip costs nothing


class LossExplorer(Explorer):
    """Controls `clip` (index into the cache's clips), `frame`, `opacity` (of the loss overlay);
    figures `image` (pixels + loss heatmap) and `curve` (mean loss per frame); `info` (text)."""

    def __init__(self, ds: Any, *, trust_code: bool = False):
        import ipywidgets as w

        from toto_lens.data.layout import layout_of
        from toto_lens.errors import TotoLensError

        super().__init__()
        self.cache, self.layout = ds, layout_of(ds)
        lay = self.layout
        self.clip_ids = np.asarray(ds["clip"].values)
        self.frame_loss = _all_frame_means(ds, lay)  # (clip, frame)
        with np.errstate(all="ignore"):
            self.mean_frame_loss = np.nanmean(self.frame_loss, 0)
            self.std_frame_loss = np.nanstd(self.frame_loss, 0)
        sample = np.asarray(ds["loss"].isel(clip=slice(0, KEPT_CLIPS)).values)[:, lay.visual]
        self.loss_max = float(np.nanpercentile(sample, 99)) if np.isfinite(sample).any() else 1.0
        self.tokenizer, self.pixels_missing = None, ""
        try:
            self.tokenizer = cache_tokenizer(ds, trust_code=trust_code)
        except TotoLensError as e:  # a cache moved away from its checkpoint: the loss alone is shown
            self.pixels_missing = str(e)
        self._clips: OrderedDict[int, tuple[np.ndarray | None, np.ndarray]] = OrderedDict()
        self.clip = w.IntSlider(0, 0, len(self.clip_ids) - 1, description="clip", continuous_update=True)
        self.frame = w.IntSlider(0, 0, lay.frames - 1, description="frame", continuous_update=True)
        self.opacity = w.FloatSlider(0.55, min=0.0, max=1.0, step=0.05, description="loss overlay",
                                     style={"description_width": "initial"})  # fmt: skip
        self.info = w.HTML()
        height, width = self._pixel_size()
        self.image = figure_widget(width=460, height=440)
        self.image.add_heatmap(colorscale="gray", zmin=0, zmax=1, showscale=False, hoverinfo="skip")
        patch_h, patch_w = height / lay.rows, width / lay.cols
        rows, cols = np.meshgrid(np.arange(lay.rows), np.arange(lay.cols), indexing="ij")
        self.image.add_heatmap(
            x0=(patch_w - 1) / 2, dx=patch_w, y0=(patch_h - 1) / 2, dy=patch_h, colorscale="Inferno",
            zmin=0, zmax=self.loss_max, opacity=self.opacity.value, customdata=np.stack([rows, cols], -1),
            colorbar={"title": {"text": "loss (nats)"}},
            hovertemplate="row %{customdata[0]} col %{customdata[1]}<br>loss %{z:.3f}<extra></extra>",
        )  # fmt: skip
        self.image.update_xaxes(visible=False, range=[-0.5, width - 0.5], constrain="domain")
        self.image.update_yaxes(visible=False, range=[height - 0.5, -0.5], scaleanchor="x")
        frames = np.arange(lay.frames)
        self.curve = figure_widget(width=520, height=400, hovermode="x unified")
        low, high = self.mean_frame_loss - self.std_frame_loss, self.mean_frame_loss + self.std_frame_loss
        self.curve.add_scatter(x=np.concatenate([frames, frames[::-1]]), y=np.concatenate([high, low[::-1]]),
                               mode="lines", fill="toself", fillcolor="rgba(120,120,120,0.2)",
                               line={"width": 0}, hoverinfo="skip", name="± std over clips")  # fmt: skip
        self.curve.add_scatter(x=frames, y=self.mean_frame_loss, mode="lines+markers", name="mean over clips",
                               line={"color": "#666666"})  # fmt: skip
        self.curve.add_scatter(x=frames, mode="lines+markers", name="this clip", line={"color": "#d62728"})
        self.curve.add_scatter(mode="markers", name="chosen frame", hoverinfo="skip",
                               marker={"size": 16, "symbol": "circle-open", "color": "#d62728",
                                       "line": {"width": 3}})  # fmt: skip
        self.curve.update_xaxes(title_text="frame", dtick=1)
        self.curve.update_yaxes(title_text="mean loss per token (nats)")
        self.curve.update_layout(legend={"orientation": "h", "y": -0.2},
                                 title={"text": f"loss per frame, cf. Toto Fig. 10 ({len(self.clip_ids)} clips)"})  # fmt: skip
        self.controls = {"clip": self.clip, "frame": self.frame, "opacity": self.opacity}
        self.figures = {"image": self.image, "curve": self.curve}
        self._observe(self.clip, self.update)
        self._observe(self.frame, self._update_frame)
        self._observe(self.opacity, self._update_opacity)
        self.widget = w.VBox([w.HBox([self.clip, self.frame, self.opacity]), w.HBox([self.image, self.curve]),
                              self.info])  # fmt: skip
        self.update()

    def _pixel_size(self) -> tuple[int, int]:
        if self.tokenizer is not None and hasattr(self.tokenizer, "image_size"):
            size = self.tokenizer.image_size
            return (int(size[0]), int(size[1])) if not isinstance(size, int) else (size, size)
        return self.layout.rows, self.layout.cols  # no pixels: one cell per token

    def clip_data(self, index: int) -> tuple[np.ndarray | None, np.ndarray]:
        """(pixels (F, H, W) or None, loss on the grid (F, R, C)) of the clip at `index`, kept for later."""
        if index in self._clips:
            self._clips.move_to_end(index)
            return self._clips[index]
        one = self.cache.isel(clip=index)
        loss = frame_grid(np.asarray(one["loss"].values, dtype=np.float32), self.layout)
        pixels = None
        if self.tokenizer is not None:
            pixels = decode_clip(np.asarray(one["tokens"].values), self.layout, self.tokenizer)
        self._clips[index] = (pixels, loss)
        if len(self._clips) > KEPT_CLIPS:
            self._clips.popitem(last=False)
        return pixels, loss

    def update(self) -> None:
        i = self.clip.value
        with self.curve.batch_update():
            self.curve.data[2].y = self.frame_loss[i]
            self.curve.data[2].name = f"clip {self.clip_ids[i]}"
        self._update_frame()

    def _update_frame(self) -> None:
        i, f = self.clip.value, self.frame.value
        pixels, loss = self.clip_data(i)
        with self.image.batch_update():
            self.image.data[0].z = None if pixels is None else pixels[f]
            self.image.data[1].z = loss[f]
            self.image.data[1].opacity = self.opacity.value if pixels is not None else 1.0
            missing = f" (no pixels: {self.pixels_missing})" if pixels is None else ""
            self.image.layout.title.text = f"clip {self.clip_ids[i]} · frame {f}{missing}"
        with self.curve.batch_update():
            self.curve.data[3].update(x=[f], y=[self.frame_loss[i, f]])
        labels = [f"{n} {self._label(n, i)}" for n in ("digit", "motion") if n in self.cache.coords]
        self.info.value = (
            f"clip {self.clip_ids[i]} ({', '.join(labels) or 'no labels'}): frame {f} mean loss "
            f"{self.frame_loss[i, f]:.3f} nats against {self.mean_frame_loss[f]:.3f} over all clips; "
            f"whole clip {np.nanmean(self.frame_loss[i]):.3f}"
        )

    def _label(self, name: str, i: int) -> str:
        coord = self.cache[name]
        value = int(coord.values[i])
        meanings = str(coord.attrs.get("flag_meanings", "")).split()
        flags = list(coord.attrs.get("flag_values", []))
        return meanings[flags.index(value)] if value in flags and len(meanings) == len(flags) else str(value)

    def _update_opacity(self) -> None:
        if self.image.data[0].z is not None:
            self.image.data[1].opacity = self.opacity.value


def _all_frame_means(ds: Any, layout: Any) -> np.ndarray:
    """Mean loss per (clip, frame) of every clip, read chunk by chunk (a large store never loads whole)."""
    data = ds["loss"].transpose("clip", "position").data
    if not hasattr(data, "map_blocks"):
        return frame_means(np.asarray(data, dtype=np.float64), layout)
    data = data.rechunk({1: -1})
    means = data.map_blocks(lambda block: frame_means(np.asarray(block, np.float64), layout),
                            chunks=(data.chunks[0], (layout.frames,)), dtype=np.float64)  # fmt: skip
    return np.asarray(means.compute())


def loss_explorer(cache: Any, *, kind: str | None = None) -> LossExplorer:
    """Explore a cache's loss clip by clip and frame by frame.

    cache: an opened cache, a store path or a checkpoint name (its default store); kind: only "video" or
    "images" clips (None: all).
    """
    from toto_lens.analysis.token_cache import select_kind

    return LossExplorer(select_kind(open_explorer_cache(cache), kind))
