"""Explorers for JupyterLab: ipywidgets controls driving plotly FigureWidgets, updated in place.

Each explorer calls the same analyses as the studies and the command line, and returns an object whose
`widget` is the box to display (a bare explorer as a cell's last line shows it), whose controls and
figures are attributes, so that a notebook or a test can drive it (`explorer.layer.value = 2`):

    from toto_lens import studies, widgets
    widgets.probing_explorer(studies.probing("demo"))       # task, probe, seed, layer → curve, confusion
    widgets.loss_explorer("demo")                           # clip, frame, opacity → image, curve
    widgets.head_explorer(studies.induction("demo"))        # score, layer, head, clip, qframe
                                                            #   → grid (clickable), pattern, frames
    widgets.attention_explorer("demo")                      # where one query token looks, every frame
    widgets.tracking_explorer(studies.track("demo"))        # predictor, clip → masks beside the truth
    widgets.generation_explorer("demo")                     # temperature, frames given → sampled clips

A control's change writes new data into the figures' existing traces: the figures are never rebuilt.
Importing this package is cheap; ipywidgets and plotly load with the first explorer.
"""

from toto_lens._lazy import lazy_exports

_EXPORTS = {
    "probing_explorer": "toto_lens.widgets.probing",
    "ProbingExplorer": "toto_lens.widgets.probing",
    "loss_explorer": "toto_lens.widgets.loss",
    "LossExplorer": "toto_lens.widgets.loss",
    "head_explorer": "toto_lens.widgets.heads",
    "HeadExplorer": "toto_lens.widgets.heads",
    "generation_explorer": "toto_lens.widgets.generation",
    "GenerationExplorer": "toto_lens.widgets.generation",
    "tracking_explorer": "toto_lens.widgets.tracking",
    "TrackingExplorer": "toto_lens.widgets.tracking",
    "attention_explorer": "toto_lens.widgets.attention",
    "AttentionExplorer": "toto_lens.widgets.attention",
    "linear_probe_predictions": "toto_lens.widgets.predictions",
    "ProbePredictions": "toto_lens.widgets.predictions",
    "Explorer": "toto_lens.widgets.base",
    "WidgetError": "toto_lens.widgets.base",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
