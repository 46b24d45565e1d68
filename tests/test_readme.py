"""The README's Python example runs as written (docs that rot are worse than none)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the example writes files where it runs: not into the checkout
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README.md has no python example"
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["continuation"].shape == (2, 30)
    assert namespace["ids"].shape == (1026,) and namespace["ids"][0] == 1
    assert namespace["per_frame"].sizes["pos_frame"] == 17, "16 frames and the special tokens"
    assert namespace["pattern"].shape == (2, 4, 1026, 1026)
    assert namespace["curve"].dims == ("layer",) and namespace["saved"]["figure"].is_file()
    assert namespace["ratio"] > 0, "the study's summary holds the numbers"
