"""The compact trainer: Toto checkpoints from the bundled clips on a CPU, the same code under torchrun.

`train(TrainConfig(...), name)` trains or resumes the run `name` (a checkpoint in the registry);
`check_run` checks its arguments first, in well under a second; `list_snapshots(name)` lists the weights a
run kept every `snapshot_every` steps (checkpoints `NAME-stepN`); `sweep_lr` trains a grid of widths and
learning rates for the μP study (appendix Fig. 11). Attributes are imported on first use (PEP 562), so
that checking a run's arguments does not pay for torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from toto_lens._lazy import lazy_exports

_EXPORTS = {
    "TrainConfig": "toto_lens.train.config",
    "model_config": "toto_lens.train.config",
    "parse_mix": "toto_lens.data.mix",
    "check_run": "toto_lens.train.check",
    "TrainResult": "toto_lens.train.loop",
    "TrainingDiverged": "toto_lens.train.loop",
    "train": "toto_lens.train.loop",
    "list_snapshots": "toto_lens.train.snapshots",
}
__all__ = [
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "check_run",
    "model_config",
    "parse_mix",
    "list_snapshots",
    "train",
]

if TYPE_CHECKING:
    from toto_lens.data.mix import parse_mix
    from toto_lens.train.check import check_run
    from toto_lens.train.config import TrainConfig, model_config
    from toto_lens.train.loop import TrainingDiverged, TrainResult, train
    from toto_lens.train.snapshots import list_snapshots

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
