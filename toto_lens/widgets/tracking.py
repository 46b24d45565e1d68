"""`tracking_explorer`: one clip's propagated masks beside the truth, for any predictor of a tracking study.

Two dropdowns choose a predictor (a layer, `pixels`, `copy-first`, `token-oracle`) and one of the clips
whose masks the study kept (`show`); the figure draws the clip's frames tinted by the true masks above the
same frames tinted by that predictor's masks, and the line under it gives that clip's J and F per object
beside the predictor's mean over every clip.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from toto_lens.widgets.base import Explorer, WidgetError, figure_widget, result_of


class TrackingExplorer(Explorer):
    """Controls `predictor`, `clip` (one of the shown clips); figure `image`; `info` (text)."""

    def __init__(self, result: Any):
        import ipywidgets as w

        from toto_lens.analysis.tracking import best_layer
        from toto_lens.figures.tracking import shown_frames

        super().__init__()
        self.result = result
        if result.sizes.get("shown", 0) == 0:
            raise WidgetError("the tracking result keeps no clip's masks; run the study with show ≥ 1")
        self.frames = shown_frames(result)
        predictors = [str(p) for p in result["predictor"].values]
        shown = [int(c) for c in result["shown"].values]
        self.predictor = w.Dropdown(options=predictors, value=best_layer(result) or predictors[0],
                                    description="predictor")  # fmt: skip
        self.clip = w.Dropdown(options=shown, value=shown[0], description="clip")
        self.info = w.HTML()
        self.image = figure_widget(height=260, width=1100)
        self.image.update_layout(margin={"l": 90, "r": 10, "t": 40, "b": 10})
        self.image.add_image(z=np.zeros((2, 2, 3), np.uint8), hoverinfo="skip")
        self.image.update_xaxes(showticklabels=False, showgrid=False)
        self.image.update_yaxes(showgrid=False)
        self.controls = {"predictor": self.predictor, "clip": self.clip}
        self.figures = {"image": self.image}
        for control in self.controls.values():
            self._observe(control, self.update)
        self.widget = w.VBox([w.HBox([self.predictor, self.clip]), self.image, self.info])
        self.update()

    def strips(self) -> np.ndarray:
        """(2 strips + gap, width, 3) uint8: the truth above the chosen predictor's masks."""
        from toto_lens.figures.tracking import GAP, mask_strip

        s = list(self.result["shown"].values).index(self.clip.value)
        true = np.asarray(self.result["true_masks"].values[s])
        pred = np.asarray(self.result["pred_masks"].sel(predictor=self.predictor.value).values[s])
        top, bottom = mask_strip(self.frames[s], true), mask_strip(self.frames[s], pred)
        gap = np.full((3 * GAP, top.shape[1], 3), 255.0, np.float32)
        return np.concatenate([top, gap, bottom]).clip(0, 255).astype(np.uint8)

    def update(self) -> None:
        image = self.strips()
        half = (image.shape[0] - 3 * 2) / 4
        one = self.result.sel(predictor=self.predictor.value)
        j = one["J_object"].sel(clip=self.clip.value).values
        f = one["F_object"].sel(clip=self.clip.value).values
        objects = [f"object {k}: J {a:.2f}, F {b:.2f}" for k, a, b in
                   zip(self.result["object"].values, j, f, strict=True) if np.isfinite(a)]  # fmt: skip
        with self.image.batch_update():
            self.image.data[0].z = image
            self.image.layout.yaxis.tickvals = [half, image.shape[0] - half]
            self.image.layout.yaxis.ticktext = ["truth", self.predictor.value]
            self.image.layout.title = f"clip {self.clip.value}: {self.predictor.value}"
        self.info.value = (
            f"clip {self.clip.value} · {'; '.join(objects)} · {self.predictor.value} over all "
            f"{self.result.sizes['clip']} clips: J&F {float(one['JF']):.3f}"
        )


def tracking_explorer(study_or_result: Any) -> TrackingExplorer:
    """An explorer over a `studies.track` result (or the study): predictor and clip → masks and scores."""
    return TrackingExplorer(result_of(study_or_result, "pred_masks", "tracking"))
