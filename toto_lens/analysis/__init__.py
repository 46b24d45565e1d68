"""Analyses: pure functions from token ids or the activation cache to `xarray` results.

They sit above extraction and below figures (DESIGN.md): nothing here imports zarr or plotly, and torch
is imported only inside the functions that fit probes (`probing.probe_layers`), so an analysis runs
wherever numpy and xarray do, and figures turn its results into plots.
Public names are imported on first use (PEP 562), so importing the package costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from toto_lens._lazy import lazy_exports
from toto_lens.errors import TotoLensError


class AnalysisError(TotoLensError, ValueError):
    """Input an analysis cannot work on: wrong shape, dtype or range, said in one line."""


def concat_outer(datasets: list, dim: str):
    """Concatenate results along a new `dim`, keeping every coordinate value any of them has (outer join).

    Every option is spelled out: xarray is changing several of these defaults, and the outer join is the
    point (tokenizers of different vocabularies, models of different depth).
    """
    import xarray as xr

    return xr.concat(
        datasets, dim=dim, data_vars="all", coords="different", compat="equals", join="outer",
        combine_attrs="drop",
    )  # fmt: skip


_EXPORTS = {
    "ngram_counts": "toto_lens.analysis.ngrams",
    "decode_ngram_keys": "toto_lens.analysis.ngrams",
    "ngram_stats": "toto_lens.analysis.ngrams",
    "compare_ngram_stats": "toto_lens.analysis.ngrams",
    "cache_ngram_stats": "toto_lens.analysis.ngrams",
    "probe_layers": "toto_lens.analysis.probing",
    "summarise_probes": "toto_lens.analysis.probing",
    "best_probe_layer": "toto_lens.analysis.probing",
    "loss_redundancy": "toto_lens.analysis.redundancy",
    "loss_by_position": "toto_lens.analysis.redundancy",
    "loss_by_frame": "toto_lens.analysis.redundancy",
    "copy_accuracy": "toto_lens.analysis.redundancy",
    "predictor_losses": "toto_lens.analysis.predictors",
    "stack_checkpoints": "toto_lens.analysis.induction",
    "prefix_matching_score": "toto_lens.analysis.induction",
    "previous_frame_score": "toto_lens.analysis.induction",
    "previous_row_score": "toto_lens.analysis.induction",
    "induction_detector_score": "toto_lens.analysis.induction",
}

__all__ = [
    "AnalysisError",
    "cache_ngram_stats",
    "compare_ngram_stats",
    "decode_ngram_keys",
    "ngram_counts",
    "ngram_stats",
]
__all__ += ["best_probe_layer", "probe_layers", "summarise_probes"]
__all__ += ["copy_accuracy", "loss_by_frame", "loss_by_position", "loss_redundancy", "predictor_losses"]
__all__ += ["induction_detector_score"]
__all__ += ["prefix_matching_score", "previous_frame_score", "previous_row_score", "stack_checkpoints"]

if TYPE_CHECKING:
    from toto_lens.analysis.induction import (
        induction_detector_score,
        prefix_matching_score,
        previous_frame_score,
        previous_row_score,
        stack_checkpoints,
    )
    from toto_lens.analysis.ngrams import (
        cache_ngram_stats,
        compare_ngram_stats,
        decode_ngram_keys,
        ngram_counts,
        ngram_stats,
    )
    from toto_lens.analysis.predictors import predictor_losses
    from toto_lens.analysis.probing import best_probe_layer, probe_layers, summarise_probes
    from toto_lens.analysis.redundancy import copy_accuracy, loss_by_frame, loss_by_position, loss_redundancy


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
