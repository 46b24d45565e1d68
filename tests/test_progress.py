"""Progress events: the library reports, each front end draws (log lines, tqdm bars, rich bars)."""

import io

from toto_lens.progress import ProgressEvent, line_progress, report, tqdm_progress


def test_line_progress_writes_about_every_tenth_and_the_end():
    lines = []
    callback = line_progress(lines.append)
    for done in range(1, 101):
        report(callback, "extract", done, 100, "clips", rate=1.5)
    assert len(lines) == 11, f"one line per ~10 % plus the first: {lines}"
    assert lines[-1] == "extract: 100/100 clips (100%), rate 1.5", lines[-1]
    report(None, "extract", 1, 100)  # no callback: nothing happens, nothing fails


def test_tasks_keep_their_own_pace():
    lines = []
    callback = line_progress(lines.append)
    for done in (1, 2):
        callback(ProgressEvent("a", done, 2))
        callback(ProgressEvent("b", done, 40))
    assert [line.split(":")[0] for line in lines] == ["a", "b", "a"], lines


def test_tqdm_progress_keeps_one_bar_per_task_and_closes_it():
    out = io.StringIO()
    callback = tqdm_progress(file=out, mininterval=0)
    for done in range(1, 5):
        callback(ProgressEvent("probe", done, 4, "fits", {"best": 0.5}))
    text = out.getvalue()
    assert "probe" in text and "4/4" in text and "best=0.5" in text, text


def test_cli_progress_logs_lines_when_not_on_a_terminal(capsys):
    from rich.console import Console

    from toto_lens.cli.progress import CliProgress

    console = Console(file=io.StringIO(), width=200)
    with CliProgress(console) as bar:
        assert not bar.live, "pytest's stdout is not a terminal"
        for done in range(1, 6):
            bar(ProgressEvent("train", done, 5, "steps", {"loss": 2.0}))
    text = console.file.getvalue()
    assert "train: 5/5 steps (100%), loss 2" in text, text
    with CliProgress(console, quiet=True) as quiet:
        quiet(ProgressEvent("train", 1, 5))
    assert console.file.getvalue() == text, "quiet (--json) prints nothing but the JSON"
