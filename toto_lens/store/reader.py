"""Reading the cache: `open_cache` returns the store as a lazily loaded, labelled `xarray.Dataset`.

Nothing here needs toto-lens to read a store (`xarray.open_zarr(path, consolidated=False)` gives the same
dataset); `open_cache` adds finding the store by checkpoint and dataset name, refusing a store that is
unfinished, of a schema version this library does not know, or missing chunks its manifest lists (a
listing, no data read), with a message that says what to run; and reading through `CheckedStore`, so a
chunk altered on disk is one line naming it (`integrity.ChunkError`). It also registers the `ds.toto`
accessor (`toto_lens.store.accessor`): labels by name, negative layers, decoded flags.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from toto_lens.errors import TotoLensError
from toto_lens.store.schema import SCHEMA_VERSION


class CacheError(TotoLensError):
    """A cache store that cannot be found or read as it is."""


def cache_dir(ckpt: str | os.PathLike) -> Path:
    """The folder that holds a checkpoint's stores: cache/<checkpoint name>/."""
    from toto_lens.paths import cache_root

    return cache_root() / Path(ckpt).name


def list_stores(ckpt: str | os.PathLike) -> list[str]:
    """Dataset names of the stores of a checkpoint."""
    folder = cache_dir(ckpt)
    return sorted(p.name[: -len(".zarr")] for p in folder.glob("*.zarr")) if folder.is_dir() else []


def cache_path(ckpt: str | os.PathLike, dataset: str | None = None) -> Path:
    """The store of (checkpoint, dataset); with one store for the checkpoint, the dataset may be omitted."""
    stores = list_stores(ckpt)
    hint = f"extract one with `toto-lens extract --ckpt {Path(ckpt).name}`"
    if dataset is None:
        from toto_lens.checkpoints import default_dataset

        default = default_dataset(ckpt)
        if len(stores) == 1:
            dataset = stores[0]
        elif default in stores:  # what `toto-lens extract --ckpt NAME` writes without --data / --split
            dataset = default
        elif not stores:
            raise CacheError(f"no cache for checkpoint {Path(ckpt).name!r} under {cache_dir(ckpt)}; {hint}")
        else:
            raise CacheError(
                f"checkpoint {Path(ckpt).name!r} has several caches ({', '.join(stores)}); choose one with --dataset"
            )
    path = cache_dir(ckpt) / f"{dataset}.zarr"
    if not path.is_dir():
        known = f" (it has: {', '.join(stores)})" if stores else ""
        raise CacheError(f"no cache {dataset!r} for checkpoint {Path(ckpt).name!r}{known}; {hint}")
    return path


def store_path(ckpt, dataset: str | None, path, missing: str) -> Path:
    """The store at `path`, or the checkpoint's store of `dataset`; `missing` says what to give when
    neither is named. Refuses a folder that is not a zarr store."""
    if path is None:
        if ckpt is None:
            raise CacheError(missing)
        path = cache_path(ckpt, dataset)
    path = Path(path)
    if not (path / "zarr.json").is_file():
        raise CacheError(
            f"{path} is not a zarr store; write one with `toto-lens extract --ckpt NAME --out {path}`"
        )
    return path


def open_cache(
    ckpt: str | os.PathLike | None = None,
    dataset: str | None = None,
    path: str | os.PathLike | None = None,
    *,
    allow_partial: bool = False,
):
    """The cache of a checkpoint (or the store at `path`) as a lazy `xarray.Dataset` (dask-backed).

    allow_partial=True opens a store whose extraction has not finished; clips not yet written read as
    their fill values (NaN, 0), and the `complete` variable says which are done (the chunk manifest is
    checked only for finished stores).

    Raises `CacheError` (one line, with the command that helps) for a store that is missing, unfinished,
    of another schema version, or missing chunks; reading a corrupt chunk later raises `ChunkError`.
    """
    import xarray as xr

    import toto_lens.store.accessor  # noqa: F401 - registers ds.toto
    from toto_lens.store import integrity

    path = store_path(ckpt, dataset, path, "open_cache needs a checkpoint name or a store path")
    try:
        attrs = integrity.store_attrs(path)
    except (OSError, ValueError) as e:
        raise CacheError(f"{path} cannot be read as a cache ({type(e).__name__}: {e})") from None
    check_version(path, attrs.get("schema_version"))
    finished = bool(attrs.get("complete"))
    if finished:
        check_manifest(path, attrs)
    try:
        ds = xr.open_zarr(integrity.checked_store(path), consolidated=False)
        # labels and per-position coordinates are small and used for every selection: load them once
        small = [k for k in ds.coords if k not in ds.indexes]
        ds = ds.assign_coords({k: ds[k].load() for k in small})
    except CacheError:
        raise
    except Exception as e:  # a damaged store: one line, not a zarr traceback
        raise CacheError(f"{path} cannot be read as a cache ({type(e).__name__}: {e})") from None
    ds.encoding["source"] = str(path)
    if not finished and not allow_partial:
        done = int(ds["complete"].sum()) if "complete" in ds else 0
        raise CacheError(
            f"{path} is unfinished ({done} of {ds.sizes.get('clip', 0)} clips written); run the command "
            f"that wrote it again to finish it (`{integrity.redo_command(attrs, path)}`), or pass "
            "allow_partial=True"
        )
    return ds


def check_version(path: Path, version) -> None:
    """Refuse a store of another schema version; version 1 stores have no checksums and no manifest."""
    if version == SCHEMA_VERSION:
        return
    if version == 1:
        raise CacheError(
            f"{path} was written by an older toto-lens (cache schema 1: no chunk checksums, no list of its "
            "chunks), so a missing or damaged chunk in it cannot be detected; extract it again with "
            "--overwrite"
        )
    raise CacheError(
        f"{path} has cache schema version {version!r}; this toto-lens reads version {SCHEMA_VERSION}: "
        "extract it again with --overwrite"
    )


def check_manifest(path: Path, attrs: dict) -> None:
    """Refuse a finished store missing chunks its manifest lists, naming the arrays and clips."""
    from toto_lens.store import integrity

    manifest = integrity.manifest_of(attrs)
    if manifest is None:
        raise CacheError(
            f"{path} is marked complete but records no chunk manifest, so missing chunks cannot be "
            "detected; extract it again with --overwrite"
        )
    lost = integrity.missing(path, manifest["arrays"])
    if lost:
        n = sum(map(len, lost.values()))
        what = integrity.damage_text(integrity.array_meta(path), lost)
        raise CacheError(
            f"{path} is missing {n} chunk{'s' if n > 1 else ''} of {what}; run the command that wrote "
            f"it to extract them again: {integrity.redo_command(attrs, path)}"
        )


def store_identity(ds) -> dict[str, str]:
    """What identifies the store a dataset was read from, for the provenance of results: its path, when
    it was created and finished, the sha256 of its manifest (its chunks and their checksums: it changes
    whenever a value does) and of its checkpoint's weights."""
    import hashlib

    from toto_lens.io import dict_attr, json_attr

    attrs = ds.attrs
    manifest = json_attr(attrs, "manifest")
    digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest() if manifest else ""
    return {
        "cache": str(ds.encoding.get("source", "")),
        "cache_created": str(attrs.get("created", "")),
        "cache_finished": str(attrs.get("finished", "")),
        "cache_manifest_sha256": digest,
        "checkpoint_sha256": str(dict_attr(attrs, "checkpoint").get("sha256", "")),
    }


def cache_checkpoint_path(ds) -> str:
    """The folder of the checkpoint a cache was extracted from (its `checkpoint` attribute)."""
    from toto_lens.io import dict_attr

    path = dict_attr(ds.attrs, "checkpoint").get("path")
    if not path:
        raise CacheError("the cache does not record its checkpoint's path (attribute checkpoint.path)")
    return str(path)


def cache_tokenizer(ds, *, trust_code: bool = False):
    """The tokenizer a cache's tokens were made with: its spec from the store, its state (codebooks) from
    the checkpoint's folder; the model's weights are not read. trust_code: allow a spec that names code
    (an external factory) to import it."""
    from toto_lens.checkpoints import REDO, TOKENIZER_STATE, resolve_checkpoint
    from toto_lens.io import dict_attr, read_safetensors
    from toto_lens.tokenizers import tokenizer_from_spec
    from toto_lens.tokenizers.registry import require_trust

    spec = dict_attr(ds.attrs, "tokenizer")
    if not spec:
        raise CacheError("the cache does not record its tokenizer (attribute tokenizer)")
    require_trust(spec, trust_code, "the cache's tokenizer")
    folder = resolve_checkpoint(cache_checkpoint_path(ds))
    state = {}
    if (folder / TOKENIZER_STATE).is_file():
        state = read_safetensors(folder / TOKENIZER_STATE, redo=REDO, error=CacheError, framework="numpy")
    return tokenizer_from_spec(spec, state, trust_code=trust_code)
