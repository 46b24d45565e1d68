"""Explorer responsiveness: from setting a control to the FigureWidget's data being updated, per control.

A control's observers run synchronously when its value is set from Python, so timing the assignment
times the whole Python side of a move: reading or computing the data (a probe fit, a decoded clip, an
attention pattern) and writing it into the existing traces. What the browser then draws is not in it.

For each explorer on a real cache (the demo's, `cache/demo/moving-digits-val.zarr` from `make demo`,
with its `probing.nc` and `induction.nc`; else a small store made here from a randomly initialised
model), each control is moved `--moves` times to random other values: the first move (cold: nothing
kept yet) is printed apart, then the median and max of the rest, against the 200 ms target. Beside it,
the baseline the in-place updates replace: building the explorer's FigureWidgets anew from their
current content (`go.FigureWidget(fig.to_dict())` for each, the data already computed), which is what
clearing an output and drawing it again adds to every move (`rebuild ms`); the ratio is a rebuilding
move (median + rebuild) over an in-place one (median). The browser's cost of drawing a new view, which
only the rebuilding move pays, comes on top and is not measured here.

Usage: python benchmarks/bench_widgets.py [--cache cache/demo/moving-digits-val.zarr] [--moves 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "cache" / "demo" / "moving-digits-val.zarr"
TARGET_MS = 200.0


def small_cache(folder: Path) -> tuple[Path, object, object]:
    """A randomly initialised toto-debug checkpoint, its store (64 clips, patterns for 4) and studies."""
    os.environ["TOTO_LENS_CACHE"] = str(folder)
    import torch

    from toto_lens import studies
    from toto_lens.checkpoints import save_checkpoint
    from toto_lens.config import NUM_SPECIAL, ModelConfig
    from toto_lens.model import Toto
    from toto_lens.run import extract
    from toto_lens.tokenizers import load_tokenizer

    tok = load_tokenizer("kmeans-64")
    config = ModelConfig.from_name("toto-debug").replace(vocab_size=tok.vocab_size + NUM_SPECIAL)
    torch.manual_seed(0)
    state = {k: torch.as_tensor(v) for k, v in tok.state_dict().items()}
    save_checkpoint(Toto(config), "bench", tokenizer=tok.spec, tokenizer_state=state,
                    training={"config": {"data": "moving-digits", "data_seed": 0}})  # fmt: skip
    result = extract("bench", clips=64, batch_size=16, acts=("pooled", "frame"), attn=("frame", "pattern"),
                     pattern_clips=4)  # fmt: skip
    store = Path(result.path)
    probing = studies.probing(cache=store, tasks="digit,motion", seeds=3)
    induction = studies.induction("bench", n=32, batch=4)
    return store, probing, induction


def demo_results(store: Path) -> tuple[object, object]:
    """The demo's saved probing and induction results, or computed when `make demo` did not write them."""
    import xarray as xr

    from toto_lens import studies
    from toto_lens.checkpoints import load_checkpoint
    from toto_lens.data.layout import layout_of
    from toto_lens.io import dict_attr
    from toto_lens.run.induction import induction_scores
    from toto_lens.store import open_cache

    folder = store.parent
    probing = (
        xr.open_dataset(folder / "probing.nc")
        if (folder / "probing.nc").is_file()
        else studies.probing(cache=store, tasks="digit,motion", seeds=3).result
    )
    if (folder / "induction.nc").is_file():
        return probing, xr.open_dataset(folder / "induction.nc")
    ds = open_cache(path=store)
    ckpt = load_checkpoint(dict_attr(ds.attrs, "checkpoint")["path"])
    tokens = ds["tokens"].isel(clip=slice(0, 8))
    return probing, induction_scores(ckpt, n=64, batch=8, clips_tokens=tokens, layout=layout_of(ds))


def moves(control, count: int, rng: np.random.Generator) -> list:
    """`count` values for the control, each different from the one before (a same value fires nothing)."""
    options = list(getattr(control, "options", None) or range(control.min, control.max + 1))
    values = [o[1] if isinstance(o, tuple) else o for o in options]
    out, last = [], control.value
    for _ in range(count):
        choices = [v for v in values if v != last]
        last = choices[int(rng.integers(len(choices)))]
        out.append(last)
    return out


def time_moves(explorer, name: str, count: int, rng: np.random.Generator) -> list[float]:
    """Seconds per move of one control, the first (cold) first."""
    control = explorer.controls[name]
    times = []
    for value in moves(control, count, rng):
        t0 = time.perf_counter()
        control.value = value
        times.append(time.perf_counter() - t0)
    return times


def rebuild_seconds(explorer, repeat: int = 5) -> float:
    """Median time to build every figure of the explorer anew from its current content."""
    import plotly.graph_objects as go

    content = [fig.to_dict() for fig in explorer.figures.values()]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for one in content:
            go.FigureWidget(one)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default=str(DEMO), help="a store with probing.nc / induction.nc beside it")
    parser.add_argument("--moves", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    store = Path(args.cache)
    tmp = None
    if store.is_dir():
        probing, induction = demo_results(store)
        where = f"{store} (with {store.parent}/probing.nc, induction.nc)"
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench-widgets-")
        store, probing, induction = small_cache(Path(tmp.name))
        where = f"a small store made here ({args.cache} does not exist: run `make demo`)"

    import plotly.graph_objects as go

    from toto_lens.widgets import attention_explorer, head_explorer, loss_explorer, probing_explorer

    go.FigureWidget()  # plotly's and anywidget's one-time start-up, out of every timing below
    rng = np.random.default_rng(args.seed)
    plans = [
        ("probing", lambda: probing_explorer(probing, cache=store), [("layer", args.moves), ("task", 10)]),
        ("probing, no prefetch", lambda: probing_explorer(probing, cache=store, prefetch=False),
         [("layer", args.moves)]),
        ("loss", lambda: loss_explorer(store), [("clip", args.moves), ("frame", args.moves)]),
        ("heads", lambda: head_explorer(induction, cache=store),
         [("head", args.moves), ("layer", args.moves), ("qframe", args.moves), ("clip", 20)]),
        ("attention map", lambda: attention_explorer(store),
         [("head", args.moves), ("qframe", args.moves), ("qcol", args.moves), ("layer", args.moves), ("clip", 20)]),
    ]  # fmt: skip
    print(f"cache: {where}")
    print(
        f"{args.moves} moves per slider (fewer for dropdowns and model-computed clips); target {TARGET_MS:.0f} ms\n"
    )
    header = f"{'explorer':<21} {'control':<8} {'build s':>8} {'cold ms':>8} {'median ms':>10} {'max ms':>8} "
    print(header + f"{'rebuild ms':>11} {'rebuilding/in-place':>20}  target")
    for name, build, controls in plans:
        t0 = time.perf_counter()
        explorer = build()
        built = time.perf_counter() - t0
        rebuild = rebuild_seconds(explorer)
        for control, count in controls:
            times = time_moves(explorer, control, count, rng)
            cold, rest = times[0], times[1:] or times
            median, worst = statistics.median(rest), max(rest)
            ok = "ok" if median * 1e3 <= TARGET_MS else "SLOW"
            print(
                f"{name:<21} {control:<8} {built:>8.2f} {cold * 1e3:>8.1f} {median * 1e3:>10.1f} "
                f"{worst * 1e3:>8.1f} {rebuild * 1e3:>11.1f} {(median + rebuild) / median:>20.1f}  {ok}"
            )
            built = float("nan")  # the build is the explorer's, printed once
        if hasattr(explorer, "close"):
            explorer.close()
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
