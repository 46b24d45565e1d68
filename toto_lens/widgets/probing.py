"""`probing_explorer`: a probing curve over depth (Toto Fig. 9) with a layer slider, and what the linear
probe at that layer gets right and wrong.

The curve is the study's: seed-mean val score over depth with a ±1 std band (sample std over seeds) and
chance dashed, as `figures/probing.py` draws it, one (task, probe) at a time; a marker sits at the chosen
layer. Beside it, the val clips of the linear probe at that layer and seed: a confusion matrix (rows
true, columns predicted, colour the fraction of the true class) for a classification, predicted against
true for a regression. The probe is fitted again from the cache on the study's own split
(`widgets.predictions`), once per (task, layer, seed); the other layers of the task are fitted in the
background meanwhile, so moving the slider finds them ready.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from toto_lens.io import json_attr
from toto_lens.widgets.base import Explorer, cache_of_result, figure_widget, result_of

_METRIC = {"accuracy": "accuracy", "r2": "R²"}
_COLOURS = ("#636efa", "#ef553b", "#00cc96", "#ab63fa")


class ProbingExplorer(Explorer):
    """Controls `task`, `probe`, `layer`, `seed`; figures `curve` and `confusion`; `info` (text)."""

    def __init__(self, result: Any, ds: Any = None, *, prefetch: bool = True):
        import ipywidgets as w

        from toto_lens.analysis.probing import L2_GRID, best_layer, summarise

        super().__init__()
        self.result, self.cache, self.prefetch = result, ds, prefetch
        summary = summarise(result)
        self._mean, self._std = summary["val_mean"], summary["val_std"]
        tasks = [str(t) for t in result["task"].values]
        probes = [str(p) for p in result["probe"].values]
        self.layers = [int(v) for v in result["layer"].values]
        depth = (
            result["depth"].values if "depth" in result.coords else np.asarray(self.layers) / max(self.layers)
        )
        self.depth = np.asarray(depth, dtype=np.float64)
        seeds = [int(s) for s in result["seed"].values]
        probe = "linear" if "linear" in probes else probes[0]
        try:
            start = best_layer(result, tasks[0], probe)
        except ValueError:  # no scores for the first curve
            start = self.layers[0]
        self.task = w.Dropdown(options=tasks, value=tasks[0], description="task")
        self.probe = w.Dropdown(options=probes, value=probe, description="probe")
        self.layer = w.SelectionSlider(
            options=[(str(v), v) for v in self.layers],
            value=start,
            description="layer",
            continuous_update=True,
        )
        self.seed = w.Dropdown(options=seeds, value=seeds[0], description="seed", layout={"width": "160px"})
        self.info = w.HTML()
        self.fitter = None
        if ds is not None:
            from toto_lens.widgets.predictions import ProbeFitter

            l2 = tuple(float(v) for v in json_attr(result.attrs, "l2_grid", list(L2_GRID)))
            val_fraction = float(result.attrs.get("val_fraction", 0.3))
            self.fitter = ProbeFitter(ds, self.layers, val_fraction=val_fraction, l2=l2)
        self.curve = figure_widget(width=520, height=400, hovermode="closest")
        self.curve.add_scatter(mode="lines", fill="toself", line={"width": 0}, hoverinfo="skip",
                               showlegend=False, name="± std")  # fmt: skip
        self.curve.add_scatter(mode="lines+markers", name="val (seed mean)")
        self.curve.add_scatter(
            mode="lines", name="chance", line={"dash": "dash", "color": "gray", "width": 1}
        )
        self.curve.add_scatter(mode="markers", name="chosen layer", hoverinfo="skip",
                               marker={"size": 18, "symbol": "circle-open", "line": {"width": 3}})  # fmt: skip
        self.curve.update_xaxes(title_text="depth (layer / blocks)")
        self.curve.update_layout(legend={"orientation": "h", "y": -0.2})
        self.confusion = figure_widget(width=480, height=440)
        self.confusion.add_heatmap(colorscale="Blues", zmin=0, zmax=1, texttemplate="%{text}",
                                   colorbar={"title": {"text": "of true"}},
                                   hovertemplate="true %{customdata[0]}<br>predicted %{customdata[1]}<br>"
                                                 "%{text} val rows (%{z:.0%} of the true class)<extra></extra>")  # fmt: skip
        self.confusion.add_scatter(mode="markers", marker={"size": 6, "opacity": 0.7}, showlegend=False,
                                   hovertemplate="clip %{customdata[0]}<br>%{customdata[1]}<br>true %{x:.3g}"
                                   "<br>predicted %{y:.3g}<extra></extra>")  # fmt: skip
        self.confusion.add_scatter(mode="lines", line={"dash": "dot", "color": "gray"}, hoverinfo="skip",
                                   showlegend=False)  # fmt: skip
        self.controls = {"task": self.task, "probe": self.probe, "layer": self.layer, "seed": self.seed}
        self.figures = {"curve": self.curve, "confusion": self.confusion}
        self._observe(self.task, self.update)
        self._observe(self.probe, self._update_curve)
        self._observe(self.layer, self._update_layer)
        self._observe(self.seed, self._update_confusion)
        self.widget = w.VBox(
            [
                w.HBox([self.task, self.probe, self.seed]),
                self.layer,
                w.HBox([self.curve, self.confusion]),
                self.info,
            ]
        )
        self.update()

    def update(self) -> None:
        self._update_curve()
        self._update_confusion()

    def _curve_values(self) -> tuple[np.ndarray, np.ndarray]:
        sel = {"task": self.task.value, "probe": self.probe.value}
        return self._mean.sel(sel).values, self._std.sel(sel).values

    def _update_curve(self) -> None:
        task = self.task.value
        mean, std = self._curve_values()
        spread = np.nan_to_num(std)
        metric = (
            str(self.result["metric"].sel(task=task).values) if "metric" in self.result.coords else "score"
        )
        chance = float(self.result["chance"].sel(task=task)) if "chance" in self.result.coords else np.nan
        colour = _COLOURS[list(self.probe.options).index(self.probe.value) % len(_COLOURS)]
        band, line, level, _ = self.curve.data
        with self.curve.batch_update():
            band.update(x=np.concatenate([self.depth, self.depth[::-1]]),
                        y=np.concatenate([mean + spread, (mean - spread)[::-1]]),
                        fillcolor=_rgba(colour, 0.18), visible=bool(np.isfinite(std).any()))  # fmt: skip
            line.update(x=self.depth, y=mean, customdata=np.stack([self.layers, spread], -1),
                        line={"color": colour}, marker={"color": colour},
                        hovertemplate=f"layer %{{customdata[0]}} (depth %{{x:.2f}})<br>val {_METRIC.get(metric, metric)}"
                        " %{y:.3f} ± %{customdata[1]:.3f}<extra></extra>")  # fmt: skip
            level.update(x=[self.depth.min(), self.depth.max()], y=[chance, chance])
            self.curve.layout.yaxis.title.text = _METRIC.get(metric, metric)
            note = "" if np.isfinite(mean).any() else " (no scores: this probe does not apply)"
            self.curve.layout.title.text = f"{task} · {self.probe.value}: val score over depth{note}"
            self._move_marker(mean, colour)
        self._write_info()

    def _move_marker(self, mean: np.ndarray, colour: str) -> None:
        i = self.layers.index(self.layer.value)
        self.curve.data[3].update(x=[self.depth[i]], y=[mean[i]], marker={"color": colour})

    def _update_layer(self) -> None:
        mean, _ = self._curve_values()
        with self.curve.batch_update():
            self._move_marker(mean, self.curve.data[1].line.color)
        self._update_confusion()

    def _update_confusion(self) -> None:
        from toto_lens.errors import TotoLensError

        fig, task, layer, seed = self.confusion, self.task.value, self.layer.value, self.seed.value
        heat, points, diagonal = fig.data
        why = "no cache to fit the probe on: pass cache=… (a store path or a Dataset)"
        p = None
        if self.fitter is not None:
            try:
                p = self.fitter.predict(task, layer, seed)
            except TotoLensError as e:  # e.g. too few labelled clips for this task: say so in the panel
                why = str(e)
        if p is None:
            with fig.batch_update():
                for trace in fig.data:
                    trace.visible = False
                fig.layout.title.text = why
            self.predictions = None
            self._write_info()
            return
        self.predictions = p
        with fig.batch_update():
            if p.kind == "classification":
                counts = p.confusion()
                share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
                ticks = list(range(len(p.labels)))
                names = np.asarray(p.labels, dtype=object)
                pairs = np.stack(np.broadcast_arrays(names[:, None], names[None, :]), -1)  # (true, pred, 2)
                heat.update(
                    z=share, x=ticks, y=ticks, text=counts.astype(str), customdata=pairs, visible=True
                )
                points.update(x=[], y=[], visible=False)
                diagonal.visible = False
                fig.update_xaxes(title_text="predicted", tickmode="array", tickvals=ticks, ticktext=p.labels)
                fig.update_yaxes(title_text="true", tickmode="array", tickvals=ticks, ticktext=p.labels,
                                 autorange="reversed")  # fmt: skip
                score = f"accuracy {p.score:.3f}"
            else:
                k = p.y_true.shape[1]
                out = np.tile(np.arange(k), len(p.y_true))  # row-major ravel: output index of each point
                names = np.asarray(p.labels, dtype=object)[out]
                points.update(x=p.y_true.ravel(), y=p.y_pred.ravel(), visible=True,
                              customdata=np.stack([np.repeat(p.clip, k).astype(object), names], -1),
                              marker={"color": [_COLOURS[o % len(_COLOURS)] for o in out]})  # fmt: skip
                lo, hi = float(np.nanmin(p.y_true)), float(np.nanmax(p.y_true))
                diagonal.update(x=[lo, hi], y=[lo, hi], visible=True)
                heat.visible = False
                fig.update_xaxes(title_text=f"true {task} ({', '.join(p.labels)})", tickmode="auto")
                fig.update_yaxes(title_text="predicted", tickmode="auto", autorange=True)
                score = f"R² {p.score:.3f}"
            fig.layout.title.text = f"linear probe · layer {layer} · seed {seed}: val {score}"
        self._write_info()
        if self.prefetch:
            rest = sorted((v for v in self.layers if v != layer), key=lambda v: abs(v - layer))
            self.fitter.prefetch(task, rest, seed)

    def _write_info(self) -> None:
        mean, std = self._curve_values()
        i = self.layers.index(self.layer.value)
        text = (
            f"<b>{self.task.value}</b> · {self.probe.value} · layer {self.layer.value} "
            f"(depth {self.depth[i]:.2f}): val {mean[i]:.3f} ± {np.nan_to_num(std[i]):.3f} over "
            f"{self.result.sizes['seed']} seed(s)"
        )
        p = getattr(self, "predictions", None)
        if p is not None and (p.task, p.layer, p.seed) == (
            self.task.value,
            self.layer.value,
            self.seed.value,
        ):
            text += f"; right panel: linear probe, λ = {p.l2:g}, {p.n_train} train / {p.n_val} val clips"
        self.info.value = text

    def close(self) -> None:
        """Stop the background fits (they would only fill the cache of fitted probes)."""
        if self.fitter is not None:
            self.fitter.close()


def _rgba(colour: str, alpha: float) -> str:
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def probing_explorer(study_or_result: Any, cache: Any = None, *, prefetch: bool = True) -> ProbingExplorer:
    """Explore a probing study (or its result, e.g. read back from `probing.nc`) layer by layer.

    cache: the activation cache the probes were fitted on (an opened Dataset, a store path or a checkpoint
    name); by default the store the study recorded. Without one the confusion panel stays empty.
    prefetch: fit the other layers' probes in the background once one is shown.
    """
    result = result_of(study_or_result, "val_score", "probing")
    return ProbingExplorer(result, cache_of_result(result, cache), prefetch=prefetch)
