"""The activation cache on disk: its zarr schema, the writer, and `open_cache`, the reader.

The schema (docs/cache-schema.md) is the contract between extraction (`toto_lens.run`) and analysis:
this package knows the arrays, their dims, chunks and attributes, and how labels are laid out from a
source's declared label spec, and keeps every chunk checked (`integrity`: checksums, the manifest;
`verify`: `toto-lens verify`); it knows neither the model nor the trainer. Names are imported on first
use (PEP 562) so importing the package costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from toto_lens._lazy import lazy_exports

_EXPORTS = {
    "open_cache": "toto_lens.store.reader",
    "cache_path": "toto_lens.store.reader",
    "cache_dir": "toto_lens.store.reader",
    "list_stores": "toto_lens.store.reader",
    "CacheError": "toto_lens.store.reader",
    "store_identity": "toto_lens.store.reader",
    "ChunkError": "toto_lens.store.integrity",
    "check_store": "toto_lens.store.verify",
    "ExtractError": "toto_lens.store.writer",
    "SCHEMA_VERSION": "toto_lens.store.schema",
}

__all__ = [
    "CacheError",
    "ChunkError",
    "check_store",
    "store_identity",
    "ExtractError",
    "SCHEMA_VERSION",
    "cache_dir",
    "cache_path",
    "list_stores",
    "open_cache",
]

if TYPE_CHECKING:
    from toto_lens.store.integrity import ChunkError
    from toto_lens.store.reader import (
        CacheError,
        cache_dir,
        cache_path,
        list_stores,
        open_cache,
        store_identity,
    )
    from toto_lens.store.schema import SCHEMA_VERSION
    from toto_lens.store.verify import check_store
    from toto_lens.store.writer import ExtractError


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
