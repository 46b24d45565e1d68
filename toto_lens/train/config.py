"""Every setting of a training run, in one frozen dataclass saved into the checkpoint's metadata.

Defaults follow the Toto paper where it has one (AdamW β = (0.9, 0.95), warmup then cosine decay,
gradient clipping at 1.0) and nanoGPT's small-model recipes where it does not; the learning rate and
batch of the CPU default were chosen by measurement on the bundled data (README, "Training").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from toto_lens.config import NUM_SPECIAL, ModelConfig
from toto_lens.data.mix import DEFAULT_DATA, parse_mix
from toto_lens.errors import ConfigError

DTYPES = ("float32", "bfloat16")


@dataclass(frozen=True)
class TrainConfig:
    model: str = "toto-tiny"
    width: int | None = None  # override the variant's width (FFN 4·width, same heads and depth): μP sweeps
    data: str = DEFAULT_DATA  # source=weight,… (the paper's Table 2 mixes); weights are normalised
    tokenizer: str = "kmeans-512"
    steps: int = 600
    batch_size: int = 8  # clips per optimizer step, over all processes
    micro_batch: int | None = None  # clips per forward pass and process; None = batch / processes
    lr: float = 3e-3
    min_lr_ratio: float = 0.1  # cosine decays to lr · min_lr_ratio
    warmup: int = 50
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    # Autocast dtype. bf16 steps are 1.2× faster for toto-tiny and 1.7× for toto-small on this kind of CPU
    # (benchmarks/bench_train.py); float32 stays the default until bf16's effect on the loss is measured.
    dtype: str = "float32"
    compile: bool = False
    mup: bool = False
    base_width: int | None = None  # μP base width; None with mup = the model's own width
    fsdp: bool = False
    # Under FSDP, checkpoints are sharded (torch.distributed.checkpoint, NAME.dcp/ beside NAME/): each
    # rank writes its own shards every ckpt_every steps, and the full safetensors checkpoint, gathered to
    # rank 0, is written at the end (and every full_ckpt_every steps when set). dcp=False: full only.
    dcp: bool = True
    full_ckpt_every: int | None = None
    activation_checkpointing: bool = False  # recompute each block's activations in the backward pass
    seed: int = 0
    data_seed: int = 0  # seed of the clip pools (which clips exist), apart from the order seed above
    train_clips: int = 2048  # clips per source in the training pool
    val_clips: int = 64  # clips per source for validation
    eval_every: int = 100
    log_every: int = 10
    ckpt_every: int = 100
    # Write the weights as their own checkpoint NAME-stepN every N steps, and NAME-step0 at the start
    # (train/snapshots.py): for studying how what the layers learn changes over training.
    snapshot_every: int | None = None
    threads: int | None = None  # torch intra-op threads; None = torch's default

    def __post_init__(self) -> None:
        for key in (
            "steps",
            "batch_size",
            "train_clips",
            "val_clips",
            "eval_every",
            "log_every",
            "ckpt_every",
        ):
            value = getattr(self, key)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{key.replace('_', '-')} must be a positive integer, got {value!r}")
        if self.micro_batch is not None and self.micro_batch <= 0:
            raise ConfigError(f"micro-batch must be positive, got {self.micro_batch}")
        if not self.lr > 0 or self.warmup < 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError("need lr > 0, warmup ≥ 0 and 0 ≤ min-lr-ratio ≤ 1")
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.width is not None and self.width <= 0:
            raise ConfigError(f"width must be positive, got {self.width}")
        if self.base_width is not None and not self.mup:
            raise ConfigError("--base-width only applies with --mup")
        if not self.dcp and not self.fsdp:
            raise ConfigError("--no-dcp only applies with --fsdp (without it every checkpoint is a full one)")
        if self.full_ckpt_every is not None:
            if not isinstance(self.full_ckpt_every, int) or self.full_ckpt_every <= 0:
                raise ConfigError(f"full-ckpt-every must be a positive integer, got {self.full_ckpt_every!r}")
            if not self.sharded:
                raise ConfigError(
                    "--full-ckpt-every only applies to sharded checkpoints (--fsdp without --no-dcp); "
                    "otherwise every checkpoint is a full one: drop it, or use --ckpt-every"
                )
        if self.snapshot_every is not None and (
            not isinstance(self.snapshot_every, int)
            or isinstance(self.snapshot_every, bool)
            or self.snapshot_every <= 0
        ):
            raise ConfigError(f"snapshot-every must be a positive integer, got {self.snapshot_every!r}")
        parse_mix(self.data)

    @property
    def sharded(self) -> bool:
        """Whether checkpoints are sharded (DCP) rather than gathered: FSDP runs, unless dcp=False."""
        return self.fsdp and self.dcp

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def resumable_with(self, other: TrainConfig) -> list[str]:
        """Fields that differ from `other` in ways that change the run (logging cadence, how often a full
        checkpoint or a snapshot is written and recomputing activations do not)."""
        free = {"log_every", "threads", "full_ckpt_every", "activation_checkpointing", "snapshot_every"}
        return [
            f.name
            for f in dataclasses.fields(self)
            if f.name not in free and getattr(self, f.name) != getattr(other, f.name)
        ]


def model_config(cfg: TrainConfig, vocab: int, seq_len: int) -> ModelConfig:
    """The variant, sized to the tokenizer's vocabulary and the clip length, with μP if asked."""
    mc = ModelConfig.from_name(cfg.model).replace(vocab_size=vocab + NUM_SPECIAL)
    if cfg.width is not None:
        mc = mc.replace(dim=cfg.width, ffn_dim=4 * cfg.width, name=f"{mc.name}-w{cfg.width}")
    if mc.context_length < seq_len:
        mc = mc.replace(context_length=seq_len)
    if cfg.mup:
        mc = mc.replace(mup_base_width=cfg.base_width or mc.dim)
    return mc
