"""Token pools for training: clips tokenized once, cached, and sampled by step.

Each source of the mix gets a pool of `train_clips` clips (and `val_clips` for validation), tokenized
and packed by `Layout` into sequences `[start] frames … [end]`, each kind with its own start token.
Pools are cached under `<cache>/tokens/` keyed by the source spec and the tokenizer, so sweeps and
resumed runs skip the rendering.

The batch of step s is a pure function of (seed, s): exact proportions of each source (largest
remainder), clips drawn uniformly from each pool. Resuming at step s therefore needs no data state
beyond the step, and every process of a distributed run computes the same global batch and takes its
own slice.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from toto_lens.data import Layout, open_source
from toto_lens.data.labels import KINDS
from toto_lens.data.mix import parse_mix
from toto_lens.data.sources.tokens import check_tokenizer_match, tokenizer_fingerprint
from toto_lens.errors import ConfigError, TotoLensError
from toto_lens.io import atomic_folder, read_safetensors
from toto_lens.paths import cache_root
from toto_lens.progress import report, say
from toto_lens.tokenizers.named import check_channels
from toto_lens.train.config import TrainConfig

ENCODE_CLIPS = 64  # clips rendered and tokenized per chunk


class ShardPool:
    """A token-shard source (`tokens:PATH`) as a training pool: the rows a batch draws are read from the
    memory-mapped shards and packed when it asks for them (nanoGPT's memmap), so shards far larger than
    memory train; `pool[rows]` gives what an in-memory pool's rows give."""

    def __init__(self, source, layout: Layout) -> None:
        self.source, self.layout = source, layout

    def __len__(self) -> int:
        return len(self.source)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self), self.layout.length

    def __getitem__(self, rows) -> np.ndarray:
        rows = np.arange(len(self))[rows] if isinstance(rows, slice) else np.asarray(rows)
        codes, kinds = self.source.rows(rows)
        out = np.empty((len(rows), self.layout.length), dtype=np.int64)
        for k in np.unique(kinds):
            at = kinds == k
            out[at] = self.layout.pack(
                codes[at].reshape(-1, self.layout.frames, self.layout.rows, self.layout.cols), KINDS[int(k)]
            )
        return out


@dataclass
class TokenPools:
    names: list[str]
    weights: np.ndarray  # (S,) mix proportions
    train: list[np.ndarray | ShardPool]  # per source: (N, L) int64 token ids, or read when drawn
    val: list[np.ndarray]
    layout: Layout

    @property
    def seq_len(self) -> int:
        return self.layout.length

    def batch(self, seed: int, step: int, size: int) -> np.ndarray:
        """The global batch of one step, (size, L) int64: exact source proportions, uniform clips."""
        counts = _largest_remainder(self.weights, size)
        rng = np.random.default_rng([seed, step])
        rows = [pool[rng.integers(len(pool), size=n)] for pool, n in zip(self.train, counts, strict=True)]
        return np.concatenate(rows)

    def validation(self) -> np.ndarray:
        return np.concatenate(self.val)


def _largest_remainder(weights: np.ndarray, size: int) -> np.ndarray:
    raw = weights * size
    counts = np.floor(raw).astype(int)
    counts[np.argsort(-(raw - counts), kind="stable")[: size - counts.sum()]] += 1
    return counts


def encode_source(source, tok, layout: Layout, progress=None, task: str = "tokenize") -> np.ndarray:
    """Every clip of `source` as packed token ids (N, L); progress hears of each chunk of clips."""
    out = np.empty((len(source), layout.length), dtype=np.int64)
    for start in range(0, len(source), ENCODE_CLIPS):
        clips = [source[i] for i in range(start, min(start + ENCODE_CLIPS, len(source)))]
        out[start : start + len(clips)] = layout.encode_clips(clips, tok)
        report(progress, task, start + len(clips), len(source), "clips")
    return out


def cached_tokens(
    name: str, split: str, n_clips: int, seed: int, tok, layout: Layout, progress=None
) -> np.ndarray | ShardPool:
    """Token ids of a source's clips, from the cache or rendered, tokenized and cached now; token shards'
    training clips stay on disk (`ShardPool`), their validation clips are read whole."""
    source = open_source(name, split=split, n_clips=n_clips, seed=seed)
    check_tokenizer_match(source, tok)
    check_channels(source[0], tok, name)
    if getattr(source, "tokenized", False):  # token shards: read when drawn, never cached or held
        pool = ShardPool(source, layout)
        return pool if split == "train" else pool[: len(pool)]
    key = hashlib.sha256(
        json.dumps([source.spec, tokenizer_fingerprint(tok)], sort_keys=True).encode()
    ).hexdigest()[:20]
    folder = cache_root() / "tokens" / f"{name}-{split}-{key}"
    if (folder / "tokens.safetensors").is_file():
        redo = f"delete {folder} to rebuild it"
        say(progress, f"tokenize {name} {split}", f"{n_clips} clips read from {folder}")
        return read_safetensors(folder / "tokens.safetensors", redo=redo, framework="numpy")["tokens"]
    tokens = encode_source(source, tok, layout, progress, f"tokenize {name} {split}")
    from safetensors.numpy import save_file

    try:
        with atomic_folder(folder) as tmp:
            save_file({"tokens": tokens}, str(tmp / "tokens.safetensors"))
            (tmp / "source.json").write_text(json.dumps(source.spec))
    except TotoLensError:
        if not (folder / "tokens.safetensors").is_file():
            raise
        # another process (a distributed run's other rank) cached the same pool first
    return tokens


def build_pools(cfg: TrainConfig, tok, verbose=None, progress=None) -> TokenPools:
    """Training and validation pools of every source in the mix; verbose gets a line per source,
    progress (`toto_lens.progress`) hears of the clips as they are rendered and tokenized."""
    mix = parse_mix(cfg.data)
    frames = open_source(next(iter(mix)), split="val", n_clips=1)[0].num_frames
    layout = Layout(frames, *tok.grid)
    train, val = [], []
    for name in mix:
        if verbose:
            verbose(f"tokenizing {name}: {cfg.train_clips} train + {cfg.val_clips} val clips")
        train.append(cached_tokens(name, "train", cfg.train_clips, cfg.data_seed, tok, layout, progress))
        val.append(cached_tokens(name, "val", cfg.val_clips, cfg.data_seed, tok, layout, progress))
    lengths = {t.shape[1] for t in train + val}
    if len(lengths) != 1:
        raise ConfigError(f"sources of one mix must have clips of equal length, got {sorted(lengths)} tokens")
    return TokenPools(list(mix), np.array(list(mix.values())), train, val, layout)
