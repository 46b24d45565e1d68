"""Training checkpoints: the model checkpoint plus what exact resumption needs, in the same folder.

A run named NAME lives in one checkpoint folder (`cache/checkpoints/NAME/`), rewritten atomically every
`ckpt_every` steps, so a SIGKILL at any moment leaves the last complete one loadable by
`load_checkpoint(NAME)`. Beside the model it holds `optimizer.safetensors` (AdamW moments by parameter
name, the torch RNG state), `optimizer_groups.json` (AdamW hyperparameters) and `train_log.jsonl`; `config.json`'s `training` field records the
TrainConfig, the step reached and whether the run is complete. The batch of a step depends only on
(seed, step), so the step is the whole data position.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)

from toto_lens.checkpoints import read_extra, read_metadata, save_checkpoint
from toto_lens.errors import ConfigError
from toto_lens.train.config import TrainConfig

LOG = "train_log.jsonl"
GROUPS = "optimizer_groups.json"  # AdamW hyperparameters per group, by parameter name
FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def resume_point(folder: Path, cfg: TrainConfig, overwrite: bool) -> dict[str, Any] | None:
    """The `training` metadata of an unfinished run of the same config in `folder`, or None to start fresh."""
    if not folder.exists():
        return None
    if overwrite:
        return None
    training = read_metadata(folder).get("training") or {}
    saved = training.get("config")
    if training.get("complete", True) or saved is None:
        step = training.get("step", "?")
        raise ConfigError(
            f"checkpoint {folder} already exists (a finished run, step {step}); pass --overwrite to train "
            "it again or choose another --name"
        )
    changed = cfg.resumable_with(TrainConfig.from_dict(saved))
    if changed:
        raise ConfigError(
            f"{folder} holds an unfinished run with other settings ({', '.join(changed)}); rerun with the "
            "same settings to resume it, or pass --overwrite to start over"
        )
    return training


def save_state(
    folder: Path,
    model: torch.nn.Module,
    raw_model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    training: dict[str, Any],
    log_rows: list[dict[str, Any]],
    tokenizer,
    is_main: bool,
) -> None:
    """Gather full model and optimizer state (a collective under DDP/FSDP); rank 0 writes the folder."""
    weights = get_model_state_dict(model, options=FULL)
    opt = get_optimizer_state_dict(model, optimizer, options=FULL)
    if not is_main:
        return
    tensors = {f"state.{name}.{key}": value for name, st in opt["state"].items() for key, value in st.items()}
    tensors["rng.torch"] = torch.get_rng_state()
    groups = [
        {k: v for k, v in g.items() if k != "params"} | {"params": list(g["params"])}
        for g in opt["param_groups"]
    ]
    save_checkpoint(
        raw_model,
        folder,
        tokenizer=tokenizer.spec,
        tokenizer_state=tokenizer.state_dict(),
        training=training,
        overwrite=True,
        weights=weights,
        extras={"optimizer": tensors},
        files={LOG: "".join(json.dumps(r) + "\n" for r in log_rows), GROUPS: json.dumps(groups, indent=1)},
    )


def load_state(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Put the optimizer moments and the RNG state of `folder` back (weights are loaded with the model)."""
    tensors = read_extra(folder, "optimizer")
    state: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("state."):
            name, _, field = key[len("state.") :].rpartition(".")
            state.setdefault(name, {})[field] = value
    groups = read_json_list(folder / GROUPS)
    set_optimizer_state_dict(model, optimizer, {"state": state, "param_groups": groups}, options=FULL)
    torch.set_rng_state(tensors["rng.torch"])


def read_json_list(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise ConfigError(
            f"{path} is missing: this checkpoint cannot resume training; pass --overwrite to start over"
        )
    return json.loads(path.read_text())


def read_log(folder: Path, upto_step: int) -> list[dict[str, Any]]:
    """Rows of the saved log up to a step: a resumed run's log then reads as one uninterrupted run."""
    path = folder / LOG
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["step"] <= upto_step]
