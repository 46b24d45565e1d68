"""The notebooks run top to bottom on a small checkpoint, and what a diff shows is what JupyterLab opens.

Each notebook under notebooks/ is a jupytext pair: NN-name.py (py:percent, reviewed in diffs) and
NN-name.ipynb (outputs stripped, opened by JupyterLab). papermill executes the .ipynb with the
parameters of conftest.PARAMETERS injected after its `parameters` cell, in a `python3` kernel that
inherits TOTO_LENS_CACHE from this process, so the notebook reads the fixture's cache, never cache/.
"""

import json
import os
import re
import time

import jupytext
import nbformat
import pytest
from notebook_helpers import NOTEBOOKS, PARAMETERS

# Seconds each notebook may take on the fixture's cache, a kernel start included. Measured on 2 cores
# (idle / busy machine): 00 10-15 s, 01 12-20 s, 02 6-10 s, 03 12-18 s, 04 10-15 s; more means something
# got slow.
BUDGET = {
    "00-quickstart": 60,
    "01-probing": 90,
    "02-redundancy": 45,
    "03-induction-heads": 60,
    "04-tokens": 45,
    "05-attention-maps": 60,
    "06-tracking": 60,
    "07-attribution": 60,
    "08-embeddings": 120,  # umap's import and first fit (numba compilation): 15-50 s
    "09-logit-lens": 60,
    "10-ablation": 60,
    "11-generation": 120,  # four samplings of 16 frames and a kernel: 40-95 s
    "12-scaling": 75,  # trains 8 runs of 2 steps (μP and the control), a kernel included: 32-51 s
    "13-your-data": 90,  # writes 18 mp4 clips, fits a tokenizer, writes shards: 10-20 s; 104 s seen once on a busy machine
}
PAIRS = sorted(p.stem for p in NOTEBOOKS.glob("*.py"))
SHOWN = ("application/vnd.plotly.v1+json", "application/vnd.jupyter.widget-view+json")


def test_every_notebook_has_parameters_and_a_budget():
    ipynbs = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
    assert PAIRS and ipynbs == PAIRS, f"each notebook is a .py/.ipynb pair: .py {PAIRS}, .ipynb {ipynbs}"
    assert sorted(PARAMETERS) == sorted(BUDGET) == PAIRS, "a new notebook needs test parameters and a budget"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BUDGET))
def test_notebook_runs_top_to_bottom(name, notebook_cache, tmp_path, monkeypatch):
    import papermill

    monkeypatch.setenv("TOTO_LENS_CACHE", str(notebook_cache))  # the kernel inherits this environment
    # Beside a second pytest-xdist worker (`make test`) the kernel shares the 2 cores: half again as long.
    budget = int(BUDGET[name] * (1.5 if os.environ.get("PYTEST_XDIST_WORKER") else 1.0))  # papermill: int
    out = tmp_path / f"{name}.ipynb"
    start = time.perf_counter()
    papermill.execute_notebook(
        str(NOTEBOOKS / f"{name}.ipynb"), str(out), parameters=PARAMETERS[name], kernel_name="python3",
        cwd=str(tmp_path), execution_timeout=budget, progress_bar=False,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    print(f"{name}: {seconds:.1f} s (budget {budget:.0f} s); executed notebook: {out}")
    nb = nbformat.read(out, as_version=4)
    cells = sorted(
        ((c.metadata.get("papermill", {}).get("duration") or 0.0, i) for i, c in enumerate(nb.cells)),
        reverse=True,
    )
    slowest = ", ".join(f"cell {i} {s:.1f} s" for s, i in cells[:3])
    assert seconds < budget, (
        f"{name} took {seconds:.0f} s, over its budget of {budget:.0f} s; slowest: {slowest}"
    )
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    errors = [
        o.get("text", "") for o in outputs if o.get("name") == "stderr" and "Traceback" in o.get("text", "")
    ]
    assert not errors, f"{name} printed a traceback: {errors[0][:2000]}"
    shown = [o for o in outputs if any(kind in o.get("data", {}) for kind in SHOWN)]
    assert shown, f"{name} showed no figure and no widget"
    if name == "01-probing":  # the run's snapshots, probed over training, not the hint that there are none
        titles = [json.dumps(o["data"].get("application/vnd.plotly.v1+json", {})) for o in shown]
        assert any(all(f"nb-run-step{s}" in t for s in (0, 2, 4)) for t in titles), (
            "01-probing drew no probing figure over the snapshots of nb-run"
        )


@pytest.mark.parametrize("name", PAIRS)
def test_pair_says_the_same_and_the_ipynb_holds_no_outputs(name):
    """A .py edited without its .ipynb (or the reverse) drifts; `jupytext --sync notebooks/*.py` mends it."""
    py, ipynb = (jupytext.read(NOTEBOOKS / f"{name}{suffix}") for suffix in (".py", ".ipynb"))

    def cells(nb):
        return [(c.cell_type, c.source.strip(), c.metadata.get("tags", [])) for c in nb.cells]

    a, b = cells(py), cells(ipynb)
    differ = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    assert a == b, (
        f"{name}.py and {name}.ipynb differ at cell {differ} (they have {len(a)} and {len(b)} cells); "
        f"run `jupytext --sync notebooks/{name}.py` (the newer file wins)"
    )
    raw = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
    dirty = [i for i, c in enumerate(raw["cells"]) if c["cell_type"] == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]  # fmt: skip
    assert not dirty, (
        f"{name}.ipynb holds outputs or execution counts in cells {dirty}; strip them with "
        f"`jupyter nbconvert --clear-output --inplace notebooks/{name}.ipynb`"
    )
    assert raw["metadata"].get("kernelspec", {}).get("name") == "python3", "JupyterLab must start python3"


@pytest.mark.parametrize("name", PAIRS)
def test_notebook_opens_with_its_question_then_its_parameters(name):
    nb = jupytext.read(NOTEBOOKS / f"{name}.py")
    first, second = nb.cells[0], nb.cells[1]
    assert first.cell_type == "markdown", f"{name} opens with a markdown cell saying what it answers"
    for needed in ("**Question:**", "**Appendix figure", "**Time on a laptop CPU:**"):
        assert needed in first.source, f"{name}'s first cell lacks {needed}"
    assert second.cell_type == "code" and second.metadata.get("tags") == ["parameters"], (
        f"{name}'s second cell is its parameters cell (tagged `parameters`, what papermill replaces)"
    )
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert not re.search(r"toto_lens\.cli|^\s*!|subprocess", code, flags=re.M), (
        f"{name} calls the command line; notebooks call toto_lens.studies and toto_lens.widgets"
    )
