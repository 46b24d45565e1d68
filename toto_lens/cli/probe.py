"""`toto-lens probe`: layer probing curves from an activation cache (Toto appendix Fig. 9)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from toto_lens.cli.app import CacheOpt, CkptOpt, DatasetOpt, JsonOpt, app, console

OUT_SUFFIXES = (".nc", ".zarr")


def _split_names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _seed_list(seeds: list[int]) -> list[int]:
    """One number N is N seeds (0 … N-1); several numbers are the seeds themselves."""
    return list(range(seeds[0])) if len(seeds) == 1 else list(dict.fromkeys(seeds))


def write_result(result, path: Path) -> Path:
    """Write a probing result to .nc (netCDF) or .zarr, replacing what is there."""
    import shutil

    import xarray as xr

    from toto_lens.io import atomic_file

    if path.suffix == ".zarr":
        # Variable-length strings: zarr v3 has no stable spec for fixed-width unicode and warns about it.
        strings = {k: result[k].astype(object) for k in result.coords if result[k].dtype.kind == "U"}
        tmp = path.with_name(f".{path.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        result.assign_coords(strings).to_zarr(tmp, mode="w", consolidated=False)
        if path.is_dir():
            shutil.rmtree(path)
        tmp.rename(path)  # a reader never sees half a store
        return path
    # netCDF: the engines installed decide the format. With scipy only it is netCDF3, which has no
    # int64: counts and layer numbers are int32 there, and attributes are numbers or strings.
    engine = next((e for e in ("h5netcdf", "netcdf4", "scipy") if e in xr.backends.list_engines()), None)
    narrow = result.assign_coords(
        {k: result[k].astype("int32") for k in result.coords if result[k].dtype == "int64"}
    )
    narrow = narrow.assign(
        {k: narrow[k].astype("int32") for k in narrow.data_vars if narrow[k].dtype == "int64"}
    )
    with atomic_file(path) as tmp:
        narrow.to_netcdf(tmp, engine=engine)
    return path


@app.command()
def probe(
    ckpt: CkptOpt,
    out: Annotated[
        Path,
        typer.Option("--out", help="Curve data, .nc (netCDF) or .zarr; the figure goes beside it as .html."),
    ],
    dataset: DatasetOpt = None,
    cache: CacheOpt = None,
    task: Annotated[
        str,
        typer.Option(
            "--task", help="Tasks, comma-separated: digit, motion, position, velocity, frame_digit."
        ),
    ] = "digit,motion",
    probe_kind: Annotated[
        str, typer.Option("--probe", help="Probes, comma-separated: linear, attention, attention-mlp.")
    ] = "linear",
    seeds: Annotated[
        list[int], typer.Option("--seeds", help="Number of seeds (3 → 0,1,2), or the seeds: --seeds 5 6 7.")
    ] = [3],  # noqa: B006
    layers: Annotated[
        str, typer.Option("--layers", help="all (the cache's layers), or a spec like 0,4,8, 2:6, mid, -1.")
    ] = "all",
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Attention probes: training epochs.")] = 10,
    as_json: JsonOpt = False,
) -> None:
    """Probe every layer of an activation cache: one curve per task and probe, scored on held-out clips."""
    from toto_lens.analysis import AnalysisError
    from toto_lens.analysis.attention_probes import AttentionConfig
    from toto_lens.analysis.probing import best_layer, probe_layers, summarise
    from toto_lens.figures import write_figure
    from toto_lens.figures.probing import probing_figure
    from toto_lens.store import open_cache

    if out.suffix not in OUT_SUFFIXES:
        raise AnalysisError(f"--out {out.name!r}: use a .nc (netCDF) or .zarr file for the curve data")
    if not seeds or (len(seeds) == 1 and seeds[0] < 1):
        raise AnalysisError("--seeds must be a positive number of seeds, or several seeds")
    ds = open_cache(ckpt, dataset=dataset, path=cache)
    layer_list = None
    if layers.strip() != "all":
        from toto_lens.run import parse_layers

        layer_list = parse_layers(layers, int(ds.attrs["model_config"]["n_layers"]))
    result = probe_layers(
        ds,
        tasks=_split_names(task),
        probes=_split_names(probe_kind),
        seeds=_seed_list(seeds),
        layers=layer_list,
        attention=AttentionConfig(epochs=epochs),
        progress=None if as_json else lambda line: console.print(line, highlight=False),
    )
    data = write_result(result, out)
    figure = write_figure(probing_figure(result), out.with_suffix(".html"))
    summary = summarise(result)
    rows = []
    for t in result["task"].values:
        for p in result["probe"].values:
            if not summary["val_mean"].sel(task=t, probe=p).notnull().any():
                continue
            layer = best_layer(result, str(t), str(p))
            pick = summary.sel(task=t, probe=p, layer=layer)
            rows.append(
                {
                    "task": str(t), "probe": str(p), "metric": str(result["metric"].sel(task=t).values),
                    "best_layer": layer, "depth": float(result["depth"].sel(layer=layer)),
                    "val_mean": float(pick["val_mean"]), "val_std": float(pick["val_std"]),
                    "chance": float(result["chance"].sel(task=t)),
                }
            )  # fmt: skip
    if as_json:
        print(json.dumps({"out": str(data), "figure": str(figure), "rows": rows}))
        return
    table = Table(title=f"best layer per task and probe ({len(result['seed'])} seeds)", box=box.SIMPLE_HEAD)
    for col in ("task", "probe", "best layer", "depth", "val (mean ± std)", "chance"):
        table.add_column(col, justify="left" if col in ("task", "probe") else "right")
    for r in rows:
        table.add_row(
            r["task"], r["probe"], str(r["best_layer"]), f"{r['depth']:.2f}",
            f"{r['val_mean']:.3f} ± {r['val_std']:.3f} {r['metric']}", f"{r['chance']:.3f}",
        )  # fmt: skip
    console.print(table)
    console.print(f"wrote {data} and {figure}")
