"""What the notebook tests share: where the notebooks are, the parameters that point each one at the
fixture's checkpoints instead of the demo model, and writing them into a copy of a notebook."""

import json
import re
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"

# Injected into each notebook's `parameters` cell: the fixture's checkpoints and a small share of the work.
PARAMETERS = {
    "00-quickstart": {"checkpoint": "nb", "dataset": "moving-digits-test", "clips": 16},
    "01-probing": {"checkpoint": "nb", "seeds": 2, "run": "nb-run"},
    "02-redundancy": {"checkpoint": "nb"},
    "03-induction-heads": {"checkpoint": "nb", "checkpoints": ["nb-early", "nb"], "n": 4, "batch": 2},
    "04-tokens": {"tokenizers": ["kmeans-64", "random-64"], "frames": 64, "tokenizer": "kmeans-64"},
    "05-attention-maps": {"checkpoint": "nb", "clip": 1, "layer": 1, "query": [3, 2, 2]},
    "06-tracking": {"checkpoint": "nb", "clips": 8, "show": 2},
    "07-attribution": {"checkpoint": "nb", "targets": 4, "n_steps": 8, "frame": 2},
    "08-embeddings": {"checkpoint": "nb", "source": "frame", "max_points": 512},
    "09-logit-lens": {"checkpoint": "nb", "clips": 4, "clip": 1},
    "10-ablation": {"checkpoint": "nb", "clips": 4, "draws": 2},
    "11-generation": {"checkpoint": "nb", "clips": 2, "compare_clips": 1, "explore_clips": 1},
    "12-scaling": {
        "widths": [16, 32],
        "lrs": [0.01, 0.1],
        "model": "toto-debug",
        "steps": 2,
        "batch_size": 1,
        "eval_every": 1,
        "tokenizer": "kmeans-64",
        "data": "moving-digits",
        "train_clips": 4,
        "val_clips": 1,
    },
    "13-your-data": {"clips": 6, "vocab": 32},
}


def with_parameters(path: Path, parameters: dict) -> dict:
    """The notebook at `path` (nbformat JSON) with `parameters` written into its `parameters` cell, each
    replacing the line that assigns that name, as a person editing the cell would."""
    nb = json.loads(path.read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    source = "".join(cell["source"])
    for name, value in parameters.items():
        source, found = re.subn(rf"^{name} = .*$", f"{name} = {value!r}", source, flags=re.M)
        assert found == 1, f"{path.name}: the parameters cell assigns {name} {found} times, not once"
    cell["source"] = source
    return nb
