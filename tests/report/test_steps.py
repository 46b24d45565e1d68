"""Report steps resume: a finished step is kept while its inputs stay the same, an interrupted one runs
again, and a changed input or a missing product runs it again."""

import json

import pytest

from toto_lens.report.steps import Steps


def counter():
    calls = []

    def fn():
        calls.append(1)
        return {"value": len(calls)}

    return calls, fn


def test_a_step_runs_once_while_its_inputs_stay_the_same(tmp_path):
    calls, fn = counter()
    first = Steps(tmp_path, None).run("fig9", {"a": 1}, fn, what="probe")
    again = Steps(tmp_path, None).run("fig9", {"a": 1}, fn, what="probe")
    assert first.ran and not again.ran and len(calls) == 1, "unchanged inputs must not run the step again"
    assert again.output == {"value": 1}, "the kept output is the recorded one"
    changed = Steps(tmp_path, None).run("fig9", {"a": 2}, fn, what="probe")
    assert changed.ran and changed.output == {"value": 2}, "a changed input must run the step again"


def test_forced_or_missing_product_runs_again(tmp_path):
    calls, fn = counter()
    Steps(tmp_path, None).run("train/base", {"a": 1}, fn, what="train")
    Steps(tmp_path, None).run("train/base", {"a": 1}, fn, what="train", force=True)
    Steps(tmp_path, None).run("train/base", {"a": 1}, fn, what="train", exists=lambda: False)
    assert len(calls) == 3, "--only (force) and a product gone from disk must both run the step"


def test_an_interrupted_step_leaves_no_record_and_runs_next_time(tmp_path):
    def interrupted():
        raise KeyboardInterrupt

    steps = Steps(tmp_path, None)
    with pytest.raises(KeyboardInterrupt):
        steps.run("fig10", {"a": 1}, interrupted, what="redundancy")
    assert not steps.path("fig10").exists(), "a step that did not finish must not look finished"
    calls, fn = counter()
    assert Steps(tmp_path, None).run("fig10", {"a": 1}, fn, what="redundancy").ran and calls == [1]


def test_progress_names_the_step_and_its_last_time(tmp_path):
    lines = []
    steps = Steps(tmp_path, lambda e: lines.append(e.line()), total=2)
    steps.run("fig9", {"a": 1}, lambda: {}, what="probing")
    record = json.loads(steps.path("fig9").read_text())
    record["key"], record["seconds"] = "stale", 125.0
    steps.path("fig9").write_text(json.dumps(record))
    Steps(tmp_path, lambda e: lines.append(e.line()), total=2).run(
        "fig9", {"a": 1}, lambda: {}, what="probing"
    )
    assert lines[0].startswith("report: [1/2] fig9: probing") and "about" not in lines[0], lines
    assert "about 2.1 min" in lines[1], f"a rerun shows the last run's time as its estimate: {lines[1]}"
