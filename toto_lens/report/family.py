"""The model family a report is made on: sizes, the μP sweep and each study's settings, from TOML.

`families.toml` beside this file holds `smoke`, `cpu` and `paper`; a user's own file scales them (see
its header). Every table is checked whole before anything runs: an unknown key, a variant that does not
exist or a value of the wrong kind is one line naming the key.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toto_lens.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 reads TOML with the package tomllib came from
    import tomli as tomllib

FAMILIES = Path(__file__).with_name("families.toml")
DEFAULT_FAMILY = "cpu"
# Study settings a family may give, each with the value used when it does not (types are checked).
SETTINGS: dict[str, dict[str, Any]] = {
    "train": {"steps": 300, "batch_size": 8, "lr": 3e-3, "warmup": 30, "train_clips": 1024, "val_clips": 64,
              "eval_every": 25, "ckpt_every": 100, "log_every": 25, "dtype": "float32", "seed": 0},
    "extract": {"clips": 256, "token_clips": 64, "batch_size": 16},
    "mup": {"model": "toto-debug", "widths": [32, 64, 128], "lrs": [0.001, 0.004, 0.016], "steps": 60,
            "batch_size": 8, "train_clips": 256, "val_clips": 32, "control": True},
    "probing": {"tasks": "digit,motion", "probes": "linear,attention", "seeds": 2, "epochs": 10,
                "image_task": "frame_digit"},
    "tracking": {"clips": 32},
    "generation": {"clips": 8, "frames": 0},  # frames 0: the model's own clip length
    "ngrams": {"tokenizers": ["kmeans-512", "random-512", "random-32768"], "frames": 2000},
    "induction": {"batch": 8},
    "ablation": {"clips": 32, "random_draws": 5},
}  # fmt: skip
# `estimates`: seconds per step kind (train, init, extract, fig9, …) for the progress display's first run;
# later runs show each step's own last time.
TOP = {
    "description": "",
    "tokenizer": "kmeans-512",
    "data": "moving-digits=0.8,image-digits=0.2",
    "estimates": {},
}
LABELS = ("base", "large", "1b")  # the paper's sizes the three stand for


@dataclass(frozen=True)
class Size:
    """One trained size: `label` (base, large, 1b), the variant, and an optional width override."""

    label: str
    model: str
    width: int | None = None

    @property
    def describe(self) -> str:
        return self.model + (f" at width {self.width}" if self.width else "")


@dataclass(frozen=True)
class Family:
    name: str
    description: str
    tokenizer: str
    data: str
    sizes: tuple[Size, ...]
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    estimates: dict[str, float] = field(default_factory=dict)

    def __getitem__(self, study: str) -> dict[str, Any]:
        return self.settings[study]

    def checkpoint(self, size: Size, *, untrained: bool = False) -> str:
        """The registry name of a size's run (`report-cpu-large`) or of its untrained copy."""
        return f"report-{self.name}-{size.label}" + ("-untrained" if untrained else "")

    def train_config(self, size: Size) -> Any:
        from toto_lens.train import TrainConfig

        t = self["train"]
        return TrainConfig(
            model=size.model, width=size.width, data=self.data, tokenizer=self.tokenizer, steps=t["steps"],
            batch_size=t["batch_size"], lr=t["lr"], warmup=min(t["warmup"], t["steps"] - 1),
            train_clips=t["train_clips"], val_clips=t["val_clips"], eval_every=t["eval_every"],
            ckpt_every=t["ckpt_every"], log_every=t["log_every"], dtype=t["dtype"], seed=t["seed"],
        )  # fmt: skip


def family_names(path: Path = FAMILIES) -> list[str]:
    return list(_read(path))


def load_family(spec: str = DEFAULT_FAMILY) -> Family:
    """`smoke`, `cpu`, `paper`, or `my.toml` (its only table) / `my.toml:NAME`; checked whole."""
    path, name = FAMILIES, spec
    if spec.endswith(".toml") or ".toml:" in spec:
        file, _, name = spec.partition(".toml")
        path, name = Path(file + ".toml"), name.removeprefix(":")
        if not path.is_file():
            raise ConfigError(f"--family {spec!r}: no such file {path}")
    tables = _read(path)
    if not name:
        if len(tables) != 1:
            raise ConfigError(
                f"--family {spec!r}: {path} holds {len(tables)} families; name one as {path}:NAME"
            )
        name = next(iter(tables))
    if name not in tables:
        raise ConfigError(
            f"--family {name!r}: choose one of {', '.join(tables)} (or a .toml file of your own)"
        )
    return _family(name, tables[name])


def _read(path: Path) -> dict[str, Any]:
    try:
        tables = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read the family file {path}: {e}") from None
    bad = [k for k, v in tables.items() if not isinstance(v, dict)]
    if bad:
        raise ConfigError(f"{path}: {bad[0]!r} is not a table ([name] with its keys below)")
    return tables


def _family(name: str, table: dict[str, Any]) -> Family:
    from toto_lens.config import ModelConfig

    where = f"family {name!r}"
    unknown = sorted(set(table) - set(TOP) - set(SETTINGS) - {"sizes"})
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}; known: sizes, {', '.join([*TOP, *SETTINGS])}"
        )
    top = {k: _typed(table.get(k, v), v, f"{where}: {k}") for k, v in TOP.items()}
    settings = {}
    for study, defaults in SETTINGS.items():
        given = table.get(study, {})
        if not isinstance(given, dict):
            raise ConfigError(f"{where}: {study} must be a table ({study} = {{ key = value, … }})")
        extra = sorted(set(given) - set(defaults))
        if extra:
            raise ConfigError(f"{where}: {study}.{extra[0]} is not a setting; known: {', '.join(defaults)}")
        settings[study] = {
            k: _typed(given.get(k, v), v, f"{where}: {study}.{k}") for k, v in defaults.items()
        }
    sizes = []
    for i, entry in enumerate(table.get("sizes", [])):
        if not isinstance(entry, dict) or set(entry) - {"label", "model", "width"} or "model" not in entry:
            raise ConfigError(f"{where}: sizes[{i}] must be {{ label = …, model = …, width = … (optional) }}")
        size = Size(str(entry.get("label", LABELS[i] if i < len(LABELS) else f"size{i}")), str(entry["model"]),
                    entry.get("width"))  # fmt: skip
        try:
            ModelConfig.from_name(size.model)
            ModelConfig.from_name(settings["mup"]["model"])
        except (ConfigError, KeyError, ValueError) as e:
            raise ConfigError(f"{where}: {e}") from None
        sizes.append(size)
    if not sizes or len({s.label for s in sizes}) != len(sizes):
        raise ConfigError(f"{where}: sizes must name at least one model, each with its own label")
    return Family(
        name, top["description"], top["tokenizer"], top["data"], tuple(sizes), settings, top["estimates"]
    )


def _typed(value: Any, default: Any, what: str) -> Any:
    """`value` if it has the default's kind (ints pass for floats); one line naming the key if not."""
    kind = type(default)
    ok = isinstance(value, kind) or (kind is float and isinstance(value, int) and not isinstance(value, bool))
    if kind is int and isinstance(value, bool):
        ok = False
    if not ok:
        raise ConfigError(f"{what} = {value!r}: expected {kind.__name__} (like {default!r})")
    if kind is list and value and not all(isinstance(v, type(default[0]) | int) for v in value):
        raise ConfigError(f"{what} = {value!r}: expected a list like {default!r}")
    return float(value) if kind is float else value
