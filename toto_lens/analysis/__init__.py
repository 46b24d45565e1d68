"""Analyses: pure functions from token ids or the activation cache to `xarray` results.

They sit above extraction and below figures (DESIGN.md): nothing here imports torch, zarr or plotly, so
an analysis runs wherever numpy and xarray do, and figures turn its results into plots.
Public names are imported on first use (PEP 562), so importing the package costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from toto_lens._lazy import lazy_exports
from toto_lens.errors import TotoLensError


class AnalysisError(TotoLensError, ValueError):
    """Input an analysis cannot work on: wrong shape, dtype or range, said in one line."""


_EXPORTS = {
    "ngram_counts": "toto_lens.analysis.ngrams",
    "decode_ngram_keys": "toto_lens.analysis.ngrams",
    "ngram_stats": "toto_lens.analysis.ngrams",
    "compare_ngram_stats": "toto_lens.analysis.ngrams",
}

__all__ = ["AnalysisError", "compare_ngram_stats", "decode_ngram_keys", "ngram_counts", "ngram_stats"]

if TYPE_CHECKING:
    from toto_lens.analysis.ngrams import compare_ngram_stats, decode_ngram_keys, ngram_counts, ngram_stats


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
