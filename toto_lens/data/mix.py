"""Data mixes: `moving-digits=0.8,image-digits=0.2`, the sources a run trains on and their weights.

A source with options (`video-folder:PATH?frames=16&stride=4`) takes its weight after its last option:
`video-folder:PATH?frames=16&stride=4=0.5`.

One parser for the trainer (which samples each batch in these proportions, as the paper's Table 2 mixes
datasets), the checkpoint's record of its training data, and the extractor's default dataset.
"""

from __future__ import annotations

from toto_lens.errors import ConfigError

# What a run trains on unless told otherwise, and what `toto-lens init` records for a variant.
DEFAULT_DATA = "moving-digits=0.8,image-digits=0.2"


def split_weight(part: str) -> tuple[str, str, str]:
    """(source name, "=" or "", weight text) of one part of a mix; `=` inside options is not a weight."""
    head, q, query = part.partition("?")
    if not q:
        return head.partition("=")
    *pairs, last = query.split("&")
    if last.count("=") < 2:
        return part, "", ""
    option, sep, weight = last.rpartition("=")
    return f"{head}?{'&'.join([*pairs, option])}", sep, weight


def parse_mix(text: str) -> dict[str, float]:
    """ "moving-digits=0.8,image-digits=0.2" → {name: weight}, normalised; a bare name weighs 1."""
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = split_weight(part)
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            raise ConfigError(f"data mix: weight {weight!r} of {name!r} is not a number") from None
        if value <= 0 or name in mix:
            raise ConfigError(f"data mix: each source once with a positive weight, got {text!r}")
        mix[name] = value
    if not mix:
        raise ConfigError(
            "data: name at least one source, e.g. moving-digits or moving-digits=0.8,image-digits=0.2"
        )
    total = sum(mix.values())
    return {k: v / total for k, v in mix.items()}


def mix_note(text: str) -> str | None:
    """A sentence when explicit weights do not sum to 1 (they are normalised, and the user should know)."""
    parts = [split_weight(p) for p in filter(None, (p.strip() for p in text.split(",")))]
    if not any(sep for _, sep, _ in parts):
        return None  # bare names weigh the same: nothing to normalise that the user wrote
    mix = parse_mix(text)
    total = sum(float(w) if sep else 1.0 for _, sep, w in parts)
    if abs(total - 1) < 1e-9:
        return None
    shares = ",".join(f"{k}={v:.3g}" for k, v in mix.items())
    return f"note: the data weights sum to {total:g}, not 1; normalised to {shares}"
