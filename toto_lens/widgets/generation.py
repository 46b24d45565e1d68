"""`generation_explorer`: sample clips again at another temperature, prompt length or seed, and look.

Sliders choose the temperature (0 = greedy) and how many real frames are given; the button samples
(`studies.generation`, a few seconds a clip on a laptop CPU) and the figure shows the real clips above the
generated ones, the line under it their PSNR/SSIM against the truth beside the copy-last baseline's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from toto_lens.widgets.base import Explorer, figure_widget


class GenerationExplorer(Explorer):
    """Controls `temperature`, `prompt_frames`, `seed` and the `run` button; figure `image`; `info`.
    `generate()` samples with the current controls (what the button does)."""

    def __init__(self, ckpt: Any = None, *, cache: Any = None, dataset: str | None = None, clips: int = 2,
                 frames: int = 16, **options: Any) -> None:  # fmt: skip
        import ipywidgets as w

        super().__init__()
        self.source = {"ckpt": ckpt, "cache": cache, "dataset": dataset, "clips": clips, **options}
        self.temperature = w.FloatSlider(1.0, min=0.0, max=2.0, step=0.1, description="temperature")
        self.prompt_frames = w.IntSlider(1, min=0, max=max(0, frames - 1), description="frames given")
        self.seed = w.IntText(0, description="seed")
        self.run = w.Button(description="generate", button_style="primary")
        self.run.on_click(lambda _: self.generate())
        self.info = w.HTML()
        self.image = figure_widget(height=120 * 2 * clips + 60, width=1150)
        self.image.add_image(z=np.zeros((2, 2, 3), np.uint8), hoverinfo="skip")
        self.image.update_xaxes(visible=False)
        self.image.update_yaxes(showgrid=False)
        self.controls = {
            "temperature": self.temperature,
            "prompt_frames": self.prompt_frames,
            "seed": self.seed,
        }
        self.figures = {"image": self.image}
        self.study = None
        self.widget = w.VBox(
            [w.HBox([self.temperature, self.prompt_frames, self.seed, self.run]), self.image, self.info]
        )
        self.generate()

    def update(self) -> None:  # moving a control alone does not sample: sampling takes seconds
        pass

    def generate(self) -> None:
        """Sample with the current controls and draw the result."""
        from toto_lens import studies
        from toto_lens.figures.generation import generation_figure

        s = dict(self.source)
        self.study = studies.generation(
            s.pop("ckpt"), temperature=self.temperature.value, prompt_frames=self.prompt_frames.value,
            seed=self.seed.value, **s,
        )  # fmt: skip
        source = generation_figure(self.study.result, clips=self.study.result.sizes["clip"])
        with self.image.batch_update():
            self.image.data[0].source = source.data[0].source
            self.image.layout.yaxis.tickvals = source.layout.yaxis.tickvals
            self.image.layout.yaxis.ticktext = source.layout.yaxis.ticktext
            self.image.layout.title = source.layout.title.text
            self.image.layout.height = source.layout.height
        rows = {r["continuation"]: r for r in self.study.summary.data["rows"]}
        self.info.value = " · ".join(
            f"{c}: PSNR {rows[c]['psnr']:.1f} dB, SSIM {rows[c]['ssim']:.2f}"
            for c in ("generated", "copy-last")
        )


def generation_explorer(ckpt: Any = None, **options: Any) -> GenerationExplorer:
    """An explorer that samples clips of a checkpoint's cache (`studies.generation` options) on demand."""
    return GenerationExplorer(ckpt, **options)
