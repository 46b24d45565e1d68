"""Batches rendered and tokenized ahead in a thread: the same store, errors and Ctrl-C as without it; the
extract command never imports scikit-learn."""

import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import zarr
from extract_helpers import make_checkpoint

import toto_lens.run.extractor as extractor
import toto_lens.run.reduce as reduce
from toto_lens import open_cache
from toto_lens.run import extract
from toto_lens.run.prefetch import Prefetch

KW = dict(clips=10, batch_size=2, acts=("pooled", "frame", "token"), token_clips=3, attn=("frame",))


def assert_identical_stores(a, b, what):
    """Every variable and coordinate bitwise equal (NaN where NaN), not merely within a tolerance."""
    a, b = open_cache(path=a), open_cache(path=b)
    assert set(a.variables) == set(b.variables), f"{what}: the stores hold different variables"
    for name in a.variables:
        x, y = a[name].values, b[name].values
        assert x.dtype == y.dtype, f"{what}: {name} is {x.dtype} in one store and {y.dtype} in the other"
        same = np.array_equal(x, y, equal_nan=x.dtype.kind == "f")
        assert same, f"{what}: {name} differs, so the batches were not the same clips, tokens or forward"


def prefetch_threads():
    return [t for t in threading.enumerate() if t.name == "toto-lens-prefetch" and t.is_alive()]


def test_the_store_with_prefetch_is_the_store_without(tmp_path):
    make_checkpoint("ex")
    extract("ex", out=tmp_path / "off.zarr", prefetch=0, **KW)
    for depth in (1, 2):
        extract("ex", out=tmp_path / f"on{depth}.zarr", prefetch=depth, **KW)
        assert_identical_stores(tmp_path / "off.zarr", tmp_path / f"on{depth}.zarr", f"prefetch={depth}")
    assert not prefetch_threads(), "a finished extraction left its prefetch thread running"


def test_stop_after_and_resume_with_prefetch_give_the_whole_store(tmp_path):
    """The producer makes only this run's pending batches: stop_after leaves the rest to the next run,
    which skips the finished batches and prefetches the missing ones only."""
    make_checkpoint("ex")
    extract("ex", out=tmp_path / "whole.zarr", prefetch=0, **KW)
    part = tmp_path / "part.zarr"
    first = extract("ex", out=part, stop_after=2, prefetch=2, **KW)
    marked = zarr.open_group(str(part), mode="r")["complete"][:]
    assert first.batches_run == 2 and marked.tolist() == [1] * 4 + [0] * 6, (
        f"stop_after=2 must write exactly batches 0 and 1 (clips 0-3), got complete={marked.tolist()}"
    )
    second = extract("ex", out=part, prefetch=2, **KW)
    assert second.complete and (second.batches_skipped, second.batches_run) == (2, 3), (
        "the resumed run must skip the 2 finished batches and run the other 3"
    )
    assert_identical_stores(tmp_path / "whole.zarr", part, "stopped, resumed with prefetch")


def test_a_producer_error_is_raised_in_the_caller_with_its_message(tmp_path, monkeypatch):
    make_checkpoint("ex")
    real, calls = extractor.clip_labels, []

    def failing(clips, specs):  # runs in the prefetch thread
        calls.append(threading.current_thread().name)
        if len(calls) == 3:
            raise ValueError("label 'digit' of clip 4 is broken")
        return real(clips, specs)

    monkeypatch.setattr(extractor, "clip_labels", failing)
    out = tmp_path / "s.zarr"
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"^label 'digit' of clip 4 is broken$"):
        extract("ex", out=out, prefetch=2, **KW)
    assert time.perf_counter() - t0 < 120, "the error took minutes to surface: the caller waited on a queue"
    assert calls[0] == "toto-lens-prefetch", f"batches were prepared in {calls[0]!r}, not the prefetch thread"
    assert not prefetch_threads(), "the prefetch thread outlived the error"
    done = zarr.open_group(str(out), mode="r")["complete"][:]
    assert done[:4].all() and not done[4:].any(), (
        f"the batches before the failing one must be kept and no other marked, got {done.tolist()}"
    )
    monkeypatch.setattr(extractor, "clip_labels", real)
    again = extract("ex", out=out, prefetch=2, **KW)
    assert again.complete and again.batches_skipped == 2, "after the error the store must resume"


def test_ctrl_c_stops_the_producer_and_keeps_the_store_resumable(tmp_path, monkeypatch):
    """KeyboardInterrupt in the main thread (where Python raises it) while the producer is ahead: it
    propagates, the prefetch thread stops, the batches written are kept and the same call completes."""
    make_checkpoint("ex")
    extract("ex", out=tmp_path / "whole.zarr", prefetch=0, **KW)
    real, runs = reduce.run_batch, []

    def interrupted(*args, **kwargs):
        runs.append(1)
        if len(runs) == 3:
            time.sleep(0.2)  # the producer has time to fill its queue
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(reduce, "run_batch", interrupted)
    out, notes = tmp_path / "s.zarr", []
    with pytest.raises(KeyboardInterrupt):
        extract("ex", out=out, prefetch=2, note=notes.append, **KW)
    assert not prefetch_threads(), "Ctrl-C left the prefetch thread running"
    kept = int(zarr.open_group(str(out), mode="r")["complete"][:].sum())
    assert kept == 4, f"the two batches run before Ctrl-C must be kept (4 clips), got {kept}"
    assert notes[-1].startswith("kept 2 of 5 batches"), f"the note must say what is kept: {notes[-1]!r}"
    monkeypatch.setattr(reduce, "run_batch", real)
    again = extract("ex", out=out, prefetch=2, **KW)
    assert again.complete and again.batches_skipped == 2 and again.batches_run == 3
    assert_identical_stores(tmp_path / "whole.zarr", out, "interrupted, resumed with prefetch")


def test_prefetch_keeps_order_stays_bounded_and_closes_promptly():
    made, gate = [], threading.Event()

    def make(i):
        made.append(i)
        return i * i

    with Prefetch(range(20), make, depth=2) as items:
        it = iter(items)
        assert next(it) == 0
        time.sleep(0.3)
        ahead = len(made)
        assert ahead <= 1 + 2 + 1, f"{ahead} items made with one consumed: the queue does not bound memory"
        assert list(it) == [i * i for i in range(1, 20)], "items must come in the order of the list"
    assert not prefetch_threads()
    with Prefetch(range(1000), lambda i: gate.wait(0.01) or i, depth=2) as items:
        for i in items:
            if i == 1:
                break  # the consumer stops early, the producer is blocked on a full queue
    assert not prefetch_threads(), "close() must stop a producer waiting on a full queue"
    assert list(Prefetch(range(4), make, depth=0)) == [0, 1, 4, 9], "depth 0 makes items in the caller"


def test_prefetch_raises_the_producer_exception_itself():
    boom = KeyError("clip 7 is missing from the store")

    def make(i):
        if i == 2:
            raise boom
        return i

    got = []
    with pytest.raises(KeyError) as info, Prefetch(range(5), make, depth=2) as items:
        for x in items:
            got.append(x)
    assert info.value is boom, "the caller must get the producer's exception object, not a copy or wrapper"
    assert got == [0, 1], f"the items before the failing one must arrive first, got {got}"


def test_the_extract_command_does_not_import_scikit_learn(tmp_path):
    """scikit-learn's import alone costs seconds: reading the bundled digits must not pay it."""
    make_checkpoint("ex")
    code = (
        "import sys\nfrom toto_lens.cli import main\ntry:\n    main()\nexcept SystemExit as e:\n"
        "    assert not e.code, e.code\nprint(sorted(m for m in sys.modules if m.split('.')[0] == 'sklearn'))"
    )
    cmd = [
        sys.executable,
        "-c",
        code,
        "extract",
        "--ckpt",
        "ex",
        "--clips",
        "2",
        "--out",
        str(tmp_path / "s"),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    imported = done.stdout.strip().splitlines()[-1]
    assert imported == "[]", f"toto-lens extract imported {imported}"
