"""Snapshots: the weights of a run at fixed steps, each a checkpoint of its own, for studying training.

`--snapshot-every N` writes `NAME-step0` (the initialisation), `NAME-stepN`, `NAME-step2N` … beside the
run's folder `NAME` (in the registry for a bare name): the model's weights with its tokenizer, no
optimizer state, as Pythia's and TransformerLens's training checkpoints do. Every command reads one by
name (`toto-lens extract --ckpt NAME-step200`), and `list_snapshots(NAME)` lists them in step order.

A snapshot's `training` record names its run (`snapshot_of`) and holds the run's config and its step.
Snapshots belong to their run: a resumed run keeps them and adds the next ones (the weights at a step do
not depend on where the run was resumed); a fresh run with `--overwrite` removes the older run's; a fresh
run without it refuses to start beside them.
"""

from __future__ import annotations

import glob
import re
import shutil
from pathlib import Path
from typing import Any

from toto_lens.checkpoints import checkpoint_path, read_metadata, save_checkpoint
from toto_lens.errors import ConfigError, TotoLensError
from toto_lens.train.state import full_options

STEP = re.compile(r"-step(\d+)$")


def snapshot_path(folder: Path, step: int) -> Path:
    """Where the snapshot of the run in `folder` at `step` lives: `NAME-stepN/` beside `NAME/`."""
    return folder.parent / f"{folder.name}-step{step}"


def list_snapshots(folder: str | Path) -> list[tuple[int, Path]]:
    """(step, folder) of the snapshots of the run `folder` (a path, or a bare name in the registry), in
    step order: the folders `NAME-stepN` whose record says they are snapshots of NAME."""
    folder = checkpoint_path(folder)
    found = []
    for path in folder.parent.glob(f"{glob.escape(folder.name)}-step*"):
        match = STEP.search(path.name)
        if match is None or path.name != f"{folder.name}-step{int(match.group(1))}" or not path.is_dir():
            continue
        try:
            training = read_metadata(path).get("training") or {}
        except TotoLensError:
            continue  # not a checkpoint (or a damaged one): not ours to list
        if training.get("snapshot_of") == folder.name:
            found.append((int(match.group(1)), path))
    return sorted(found)


def clear_snapshots(folder: Path, overwrite: bool, remove: bool = True) -> None:
    """Before a fresh run: remove the snapshots an older run of this name left (with `overwrite`; only
    where `remove`, the main process), or refuse in one line (without it, in every process), so that no
    snapshot of another run is mistaken for this one's."""
    if overwrite and not remove:
        return
    old = list_snapshots(folder)
    if not old:
        return
    if not overwrite:
        shown = ", ".join(p.name for _, p in old[:3]) + (" …" if len(old) > 3 else "")
        raise ConfigError(
            f"snapshots of an earlier run {folder.name} are in {folder.parent} ({shown}); pass --overwrite "
            "to remove them and train again, or choose another --name"
        )
    for _, path in old:
        shutil.rmtree(path)


def save_snapshot(
    folder: Path, step: int, model, raw_model, record: dict[str, Any], tokenizer, is_main: bool
) -> dict[str, Any]:
    """Write the weights at `step` as the checkpoint `NAME-stepN` (gathered from every rank under FSDP:
    a collective; rank 0 writes). Returns the gathered weights, for a full checkpoint of the same step."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    weights = get_model_state_dict(model, options=full_options())
    if not is_main:
        return weights
    training = {**record, "step": step, "complete": True, "snapshot_of": folder.name}
    save_checkpoint(
        raw_model,
        snapshot_path(folder, step),
        tokenizer=tokenizer.spec,
        tokenizer_state=tokenizer.state_dict(),
        training=training,
        overwrite=True,
        weights=weights,
    )
    return weights
