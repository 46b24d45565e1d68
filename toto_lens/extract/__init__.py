"""Extraction: hook points on the native model, and the extractor that writes the activation cache.

`capture(model, names, fn)` gives TransformerLens-named activations of any forward pass; `extract(...)`
(the `toto-lens extract` command) runs a checkpoint over a dataset and writes activations, losses and
attention summaries into a resumable zarr store (docs/cache-schema.md); `open_cache` reads it back as
an `xarray.Dataset`. Names are imported on first use (PEP 562) so importing the package costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from toto_lens._lazy import lazy_exports

_EXPORTS = {
    "capture": "toto_lens.extract.hooks",
    "hook_points": "toto_lens.extract.hooks",
    "HookError": "toto_lens.extract.hooks",
    "parse_layers": "toto_lens.extract.layers",
    "LayerSpecError": "toto_lens.extract.layers",
    "extract": "toto_lens.extract.extractor",
    "ExtractPlan": "toto_lens.extract.extractor",
    "ExtractResult": "toto_lens.extract.extractor",
    "ExtractError": "toto_lens.extract.store",
    "open_cache": "toto_lens.extract.reader",
    "cache_path": "toto_lens.extract.reader",
    "list_stores": "toto_lens.extract.reader",
    "CacheError": "toto_lens.extract.reader",
    "SCHEMA_VERSION": "toto_lens.extract.schema",
}

__all__ = [
    "CacheError",
    "ExtractError",
    "ExtractPlan",
    "ExtractResult",
    "HookError",
    "LayerSpecError",
    "SCHEMA_VERSION",
    "cache_path",
    "capture",
    "extract",
    "hook_points",
    "list_stores",
    "open_cache",
    "parse_layers",
]

if TYPE_CHECKING:
    from toto_lens.extract.extractor import ExtractPlan, ExtractResult, extract
    from toto_lens.extract.hooks import HookError, capture, hook_points
    from toto_lens.extract.layers import LayerSpecError, parse_layers
    from toto_lens.extract.reader import CacheError, cache_path, list_stores, open_cache
    from toto_lens.extract.schema import SCHEMA_VERSION
    from toto_lens.extract.store import ExtractError


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
