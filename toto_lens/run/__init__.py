"""Everything that runs a model's weights: hook points, layer specs, the extractor, head-score runners.

`capture(model, names, fn)` gives TransformerLens-named activations of any forward pass (the one way
into the model's insides); `extract(...)` (the `toto-lens extract` command) runs a checkpoint over a
dataset and writes activations, losses and attention summaries into a resumable zarr store
(`toto_lens.store`); `induction_scores` runs the head-score protocols on synthetic and real sequences
and hands the patterns to the pure score functions of `toto_lens.analysis.heads`.
Names are imported on first use (PEP 562) so importing the package costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from toto_lens._lazy import lazy_exports

_EXPORTS = {
    "capture": "toto_lens.run.hooks",
    "hook_points": "toto_lens.run.hooks",
    "HookError": "toto_lens.run.hooks",
    "parse_layers": "toto_lens.run.layers",
    "LayerSpecError": "toto_lens.run.layers",
    "extract": "toto_lens.run.extractor",
    "ExtractPlan": "toto_lens.run.plan",
    "ExtractResult": "toto_lens.run.extractor",
    "ExtractError": "toto_lens.store.writer",
    "induction_scores": "toto_lens.run.induction",
    "induction_across_checkpoints": "toto_lens.run.induction",
}

__all__ = [
    "ExtractError",
    "ExtractPlan",
    "ExtractResult",
    "HookError",
    "LayerSpecError",
    "capture",
    "extract",
    "hook_points",
    "induction_across_checkpoints",
    "induction_scores",
    "parse_layers",
]

if TYPE_CHECKING:
    from toto_lens.run.extractor import ExtractResult, extract
    from toto_lens.run.hooks import HookError, capture, hook_points
    from toto_lens.run.induction import induction_across_checkpoints, induction_scores
    from toto_lens.run.layers import LayerSpecError, parse_layers
    from toto_lens.run.plan import ExtractPlan
    from toto_lens.store.writer import ExtractError


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
