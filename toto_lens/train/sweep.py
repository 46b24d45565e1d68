"""The μP learning-rate sweep (appendix Fig. 11): every (width, lr) pair trained for the same steps.

Each pair is an ordinary run, a checkpoint under `<cache>/sweeps/<table name>/w<width>-lr<lr>`, so an
interrupted sweep resumes: finished pairs are read back, unfinished ones continue. A pair whose loss
diverges is recorded as NaN and the sweep goes on. The table (CSV: width, lr, mup, steps,
final_train_loss, val_loss) is written atomically once every pair has run.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from toto_lens.checkpoints import read_metadata
from toto_lens.io import atomic_file
from toto_lens.paths import cache_root
from toto_lens.train.config import TrainConfig
from toto_lens.train.loop import TrainingDiverged, check_run, train
from toto_lens.train.state import read_log

COLUMNS = ("width", "lr", "mup", "steps", "final_train_loss", "val_loss")


def sweep_lr(
    base: TrainConfig,
    widths: list[int],
    lrs: list[float],
    out: str | Path,
    *,
    report: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    from toto_lens.errors import ConfigError
    from toto_lens.io import check_writable

    out = Path(out)
    if not widths or not lrs or min(widths) <= 0 or min(lrs) <= 0:
        raise ConfigError(f"--widths and --lrs need positive numbers, got {widths} and {lrs}")
    check_writable(out, "--out")
    root = cache_root() / "sweeps" / out.stem
    for width in widths:  # every pair checked before the first one trains
        check_run(base.replace(width=width, lr=lrs[0]), str(root / f"w{width}-lr{lrs[0]:g}"))
        for lr in lrs:
            check_finished(base.replace(width=width, lr=lr), root / f"w{width}-lr{lr:g}", out)
    rows = []
    for width in widths:
        for lr in lrs:
            cfg = base.replace(width=width, lr=lr)
            folder = root / f"w{width}-lr{lr:g}"
            rows.append(
                {"width": width, "lr": lr, "mup": cfg.mup, "steps": cfg.steps, **_run(cfg, folder, report)}
            )
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    with atomic_file(out) as tmp:
        tmp.write_text(text.getvalue())
    return rows


def check_finished(cfg: TrainConfig, folder: Path, out: Path) -> None:
    """A finished pair is read back only if it was trained with these settings (an unfinished one with
    other settings is refused by `train` itself)."""
    from toto_lens.errors import ConfigError

    if not (folder / "config.json").is_file():
        return
    training = read_metadata(folder).get("training") or {}
    if not training.get("complete") or not training.get("config"):
        return
    changed = cfg.resumable_with(TrainConfig.from_dict(training["config"]))
    if changed:
        raise ConfigError(
            f"{folder} holds a finished run with other settings ({', '.join(changed)}); give the sweep "
            f"another name (its folder is named after the table {out.name}) or remove that folder"
        )


def _run(cfg: TrainConfig, folder: Path, report) -> dict[str, float]:
    done = folder.exists() and (read_metadata(folder).get("training") or {}).get("complete")
    if not done:
        if report:
            report(f"width {cfg.width}, lr {cfg.lr:g}: training {cfg.steps} steps")
        try:
            train(cfg, str(folder), overwrite=False)
        except TrainingDiverged:
            return {"final_train_loss": math.nan, "val_loss": math.nan}
    metrics = read_metadata(folder)["training"]["metrics"]
    log = read_log(folder, cfg.steps)
    return {"final_train_loss": log[-1]["train_loss"], "val_loss": metrics.get("val_loss", math.nan)}
