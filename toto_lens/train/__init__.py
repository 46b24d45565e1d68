"""The compact trainer: Toto checkpoints from the bundled clips on a CPU, the same code under torchrun.

`train(TrainConfig(...), name)` trains or resumes the run `name` (a checkpoint in the registry);
`sweep_lr` trains a grid of widths and learning rates for the μP study (appendix Fig. 11).
"""

from toto_lens.data.mix import parse_mix
from toto_lens.train.config import TrainConfig
from toto_lens.train.loop import TrainingDiverged, TrainResult, model_config, train

__all__ = ["TrainConfig", "TrainResult", "TrainingDiverged", "model_config", "parse_mix", "train"]
