"""One function per question of the Toto appendix, shared by the command line, notebooks and reports.

Each `studies.<question>(…)` takes checkpoint names or paths (or an opened cache) and the options its
command has, and returns a `Study`: `result` (an `xarray.Dataset` whose attributes say what was run on
what), `figure` (plotly), `summary` (the table the command prints, as data and as text) and
`save(path)`. The command line only parses, calls a study and prints (`toto_lens.cli`):

    from toto_lens import studies
    study = studies.probing("demo", tasks="digit,motion", probes="linear")
    study.summary            # best layer per task and probe
    study.figure             # curves over depth
    study.save("probing.nc") # probing.nc + probing.html

Adding a question: docs/architecture.md ("Adding an analysis").
"""

from __future__ import annotations

# Imported here, not lazily: each function shares its module's name, and importing the package first
# binds the names to the functions (heavy libraries load inside the functions, not here).
from toto_lens.studies.ablation import ablate
from toto_lens.studies.attention import attention
from toto_lens.studies.attribution import attribute
from toto_lens.studies.base import Study, StudyError, Summary
from toto_lens.studies.embedding import embed
from toto_lens.studies.generation import generation
from toto_lens.studies.induction import induction
from toto_lens.studies.lens import lens
from toto_lens.studies.ngrams import ngrams
from toto_lens.studies.probing import probing
from toto_lens.studies.redundancy import redundancy
from toto_lens.studies.scaling import lr_sweep, scaling
from toto_lens.studies.tracking import track

__all__ = [
    "Study",
    "StudyError",
    "Summary",
    "ablate",
    "attention",
    "attribute",
    "embed",
    "generation",
    "induction",
    "lens",
    "lr_sweep",
    "ngrams",
    "probing",
    "redundancy",
    "scaling",
    "track",
]
