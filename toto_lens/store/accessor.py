"""`ds.toto`: the cache's conventions as an xarray accessor, on Datasets and DataArrays.

Class labels (`motion`, `kind`, `digit`, …) are stored as integer codes with CF `flag_values` /
`flag_meanings`, and `layer` holds layer numbers (0 = embeddings). Plain xarray selects neither by name
nor from the end, so `open_cache` registers this accessor (importing `toto_lens.store.accessor` does too,
for a store opened with `xarray.open_zarr`):

    ds.toto.sel(motion="left", layer=-1)      # label by name (or code), layer counted from the end
    ds.toto.sel(kind="video", motion=["left", "right"], clip=slice(0, 99))
    ds.toto.decode()                          # flag labels become string coordinates ("left", …)
    ds.toto.meanings("motion")                # {0: "static", 1: "left", …}
    ds.toto.attr("checkpoint")                # a structured attribute, parsed from its JSON text

`sel` takes what `Dataset.sel` takes; on top of that a label coordinate along `clip` (any dims-less
label: `motion`, `kind`, `digit`) selects the clips whose label is the given name(s) or code(s), and a
negative `layer` means what it means on the command line: −1 is the last block of the model (not the
last layer stored), −2 the one before. A layer the store does not hold is a KeyError, as in xarray.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

MISSING_LABEL = "n/a"  # what `decode` writes for a code with no meaning (motion −1 of image sequences)


class _TotoAccessor:
    def __init__(self, obj: xr.Dataset | xr.DataArray) -> None:
        self._obj = obj

    # ---- labels -------------------------------------------------------------------------------------

    def meanings(self, name: str) -> dict[int, str]:
        """{code: meaning} of a flag label, from its `flag_values` / `flag_meanings` attributes."""
        attrs = self._obj[name].attrs
        words = str(attrs.get("flag_meanings", "")).split()
        if not words:
            raise KeyError(f"{name!r} is not a class label (it has no flag_meanings)")
        values = attrs.get("flag_values", list(range(len(words))))
        return {int(v): w for v, w in zip(np.atleast_1d(values), words, strict=True)}

    def codes(self, name: str, value: Any) -> list[int]:
        """The codes of `value` (a meaning, a code, or a list of them) for the label `name`."""
        items = value if isinstance(value, list | tuple | set | np.ndarray) else [value]
        by_name = {w: c for c, w in self.meanings(name).items()} if self._is_flag(name) else {}
        out = []
        for item in items:
            if isinstance(item, str):
                if item not in by_name:
                    known = ", ".join(by_name) or "none: it is not a class label"
                    raise KeyError(f"{item!r} is not a value of {name!r} (its names: {known})")
                out.append(by_name[item])
            else:
                out.append(int(item))
        return out

    def decode(self) -> xr.Dataset | xr.DataArray:
        """A copy whose flag labels are string coordinates (code → meaning; codes without one: "n/a")."""
        obj = self._obj
        new = {}
        for name in obj.coords:
            if self._is_flag(name):
                table = self.meanings(name)
                coord = obj[name]
                words = np.array(
                    [table.get(int(c), MISSING_LABEL) for c in coord.values.ravel()], dtype=object
                )
                words = words.reshape(coord.shape)
                attrs = {k: v for k, v in coord.attrs.items() if k not in ("flag_values", "flag_meanings")}
                new[name] = (coord.dims, words.astype(str), attrs)
        return obj.assign_coords(new)

    def _is_flag(self, name: str) -> bool:
        return name in self._obj.coords and "flag_meanings" in self._obj[name].attrs

    # ---- layers -------------------------------------------------------------------------------------

    def n_blocks(self) -> int:
        """Number of blocks of the model the store was extracted from (its last layer's number)."""
        from toto_lens.io import dict_attr

        config = dict_attr(self._obj.attrs, "model_config")
        if config.get("n_layers"):
            return int(config["n_layers"])
        if "depth" in self._obj.coords:  # depth = layer / blocks
            layer, depth = self._obj["layer"].values, self._obj["depth"].values
            nonzero = depth > 0
            if nonzero.any():
                return int(round(float(layer[nonzero][0] / depth[nonzero][0])))
        raise KeyError("the number of blocks is unknown (no model_config attribute, no depth coordinate)")

    def layer(self, value: Any) -> Any:
        """Layer numbers with negatives counted from the end (−1 = the last block), as on the CLI."""
        if isinstance(value, slice) or value is None:
            return value
        if isinstance(value, list | tuple | np.ndarray):
            return [self.layer(v) for v in value]
        value = int(value)
        return value + self.n_blocks() + 1 if value < 0 else value

    # ---- selection ----------------------------------------------------------------------------------

    def sel(self, indexers: dict[str, Any] | None = None, **kwargs: Any) -> xr.Dataset | xr.DataArray:
        """`sel` with labels by name along clip and negative layers (see the module docstring)."""
        given = {**(indexers or {}), **kwargs}
        obj, plain = self._obj, {}
        for name, value in given.items():
            if name == "layer":
                plain[name] = self.layer(value)
            elif name in obj.coords and name not in obj.indexes and obj[name].dims == ("clip",):
                mask = np.isin(obj[name].values, self.codes(name, value))
                obj = obj.isel(clip=np.flatnonzero(mask))
            else:
                plain[name] = value
        return obj.sel(plain) if plain else obj

    def attr(self, name: str, default: Any = None) -> Any:
        """An attribute, parsed when it is a structure stored as JSON text (checkpoint, request, …)."""
        from toto_lens.io import json_attr

        return json_attr(self._obj.attrs, name, default)


@xr.register_dataset_accessor("toto")
class TotoDatasetAccessor(_TotoAccessor):
    """`ds.toto`: see the module docstring."""


@xr.register_dataarray_accessor("toto")
class TotoDataArrayAccessor(_TotoAccessor):
    """`da.toto`: see the module docstring (the number of blocks comes from the `depth` coordinate)."""
