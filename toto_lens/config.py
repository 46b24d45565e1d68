"""Model configurations and the named Toto variants.

Follows the Toto paper (main Table 1, appendix Table 17) for widths, heads and depths, and gpt-fast's
`ModelArgs.from_name` for named presets. Pure Python on purpose: `toto-lens variants` and parameter
counts need no torch import.

Choices the paper leaves open (see PROTOCOLS.md):

* Vocabulary: 8192 dVAE codes (the paper's tokenizer) plus 4 special ids, 0 = pad, 1 = video start,
  2 = end, 3 = image-sequence start; visual code c is token id c + 4. So `vocab_size = 8196`.
* FFN width: the paper's main variants do not follow one rule. `toto-base` (120M) and `toto-large`
  (280M) land on their counts with a SwiGLU hidden width of 4·d (3072, 4096): 126M (+5%) and 285M (+2%).
  `toto-1b` is TinyLlama's shape (2048 wide, 22 layers, the paper cites it); with 4·d it would be 1.51B,
  so it takes LLaMA's rule, 8/3·d rounded up to a multiple of 256 = 5632 (TinyLlama's width): 1.165B
  (+6%). Every variant is full multi-head attention (n_kv_heads = n_heads).
* a1 … a6 (Table 17) use the paper's widths and depths with FFN 4·d and land within 13% of the
  paper's counts (a1 +13%, a5 -10%, a6 -12%: Table 17's counts do not follow one block shape);
  `toto-lens variants` shows the paper's count beside ours.
* Context: frames × tokens per frame + 2 special ids (start, end). Paper models: 16 × 16×16 + 2 = 4098.
  The small CPU variants: 16 frames × 8×8 tokens + 2 = 1026, with the bundled 512-code tokenizer.
* RoPE base 10,000 and RMSNorm eps 1e-5, as LLaMA.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from toto_lens.errors import ConfigError

# Special token ids (PROTOCOLS.md, the paper's Fig. 15): [1] starts a video, [3] a sequence of images,
# [2] ends every sequence; 0 pads.
PAD_ID = 0
VIDEO_START_ID = 1
END_ID = 2
IMAGE_START_ID = 3
NUM_SPECIAL = 4


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of one Toto model. Frozen: a config names a model, it is never mutated."""

    vocab_size: int  # including the special ids
    dim: int  # model width
    n_layers: int
    n_heads: int
    ffn_dim: int  # SwiGLU hidden width
    context_length: int  # most tokens one sequence may hold (RoPE table and KV-cache size)
    n_kv_heads: int | None = None  # None = n_heads (multi-head); fewer = grouped-query attention
    rope_base: float = 10_000.0
    norm_eps: float = 1e-5
    init_std: float = 0.02
    # μP (Tensor Programs V): None = standard parameterisation; otherwise the width at which μP and SP
    # coincide, and width multiplier m = dim / mup_base_width.
    mup_base_width: int | None = None
    pad_id: int = PAD_ID
    video_start_id: int = VIDEO_START_ID
    end_id: int = END_ID
    image_start_id: int = IMAGE_START_ID
    # Token id of visual code 0 when the codes do not follow the special ids (an imported model whose
    # specials come after its codes, as LVM's 8192 codes then specials); None = max(special ids) + 1.
    # Saved only when set, so configs without it read and write as before.
    first_code_id: int | None = None
    name: str = field(default="custom", compare=False)

    def __post_init__(self) -> None:
        positive = ("vocab_size", "dim", "n_layers", "n_heads", "ffn_dim", "context_length")
        for key in positive:
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"model config: {key} must be a positive integer, got {value!r}")
        if self.dim % self.n_heads:
            raise ConfigError(
                f"model config: dim {self.dim} is not divisible by n_heads {self.n_heads}; "
                "choose a width that is a multiple of the head count"
            )
        if self.head_dim % 2:
            raise ConfigError(f"model config: head dim {self.head_dim} must be even for rotary embeddings")
        if self.kv_heads <= 0 or self.n_heads % self.kv_heads:
            raise ConfigError(
                f"model config: n_heads {self.n_heads} must be a multiple of n_kv_heads {self.kv_heads}"
            )
        if max(self.special_ids) >= self.vocab_size:
            raise ConfigError(f"model config: special ids {self.special_ids} must lie below vocab_size")
        if self.mup_base_width is not None and self.mup_base_width <= 0:
            raise ConfigError(f"model config: mup_base_width must be positive, got {self.mup_base_width}")
        if self.first_code_id is not None and not (
            0 <= self.first_code_id < self.vocab_size and self.first_code_id not in self.special_ids
        ):
            raise ConfigError(
                f"model config: first_code_id {self.first_code_id} must be a non-special id below "
                f"vocab_size {self.vocab_size} (special ids {self.special_ids})"
            )

    # Derived fields (gpt-fast style): never stored, always consistent with the ones above.
    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def kv_heads(self) -> int:
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads

    @property
    def special_ids(self) -> tuple[int, ...]:
        return (self.pad_id, self.video_start_id, self.end_id, self.image_start_id)

    @property
    def code_offset(self) -> int:
        """Token id of visual code 0: codes follow the special ids unless `first_code_id` says otherwise."""
        return max(self.special_ids) + 1 if self.first_code_id is None else self.first_code_id

    @property
    def num_codes(self) -> int:
        """Visual codes: the ids from `code_offset` up to the next special id or the end of the vocabulary."""
        end = min((i for i in self.special_ids if i > self.code_offset), default=self.vocab_size)
        return end - self.code_offset

    @property
    def mup_width_mult(self) -> float:
        return 1.0 if self.mup_base_width is None else self.dim / self.mup_base_width

    def num_params(self, *, embeddings: bool = True) -> int:
        """Exact parameter count of `Toto(self)`, computed without building it."""
        d, hd = self.dim, self.head_dim
        attn = d * d * 2 + d * self.kv_heads * hd * 2  # wq, wo; wk, wv
        mlp = 3 * d * self.ffn_dim  # w1 (gate), w3 (up), w2 (down)
        block = attn + mlp + 2 * d  # two RMSNorm gains
        total = self.n_layers * block + d  # final norm
        if embeddings:
            total += 2 * self.vocab_size * d  # token embeddings + untied output head
        return total

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if data["first_code_id"] is None:  # keeps config.json as older toto-lens versions read it
            del data["first_code_id"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of `to_dict`; names unknown or missing fields instead of a bare TypeError."""
        if not isinstance(data, dict):
            raise ConfigError(f"model config must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"model config: unknown field(s) {', '.join(unknown)}")
        required = {
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        missing = sorted(required - set(data))
        if missing:
            raise ConfigError(f"model config: missing field(s) {', '.join(missing)}")
        return cls(**data)

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_name(cls, name: str) -> ModelConfig:
        table = variants()
        if name not in table:
            raise ConfigError(f"unknown model variant {name!r}; choose one of: {', '.join(table)}")
        return table[name]


PAPER_VOCAB = 8192 + NUM_SPECIAL
PAPER_CONTEXT = 16 * 16 * 16 + 2
SMALL_VOCAB = 512 + NUM_SPECIAL
SMALL_CONTEXT = 16 * 8 * 8 + 2

# name: (dim, n_heads, n_layers, ffn_dim, vocab, context, paper's parameter count or None)
_VARIANTS: dict[str, tuple[int, int, int, int, int, int, int | None]] = {
    # CPU-sized models for the bundled moving-digits data, named by size.
    "toto-debug": (32, 2, 2, 64, SMALL_VOCAB, SMALL_CONTEXT, None),
    "toto-tiny": (64, 4, 4, 256, SMALL_VOCAB, SMALL_CONTEXT, None),
    "toto-mini": (128, 4, 6, 512, SMALL_VOCAB, SMALL_CONTEXT, None),
    "toto-small": (256, 8, 8, 1024, SMALL_VOCAB, SMALL_CONTEXT, None),
    # The paper's main models (Table 1).
    "toto-base": (768, 12, 12, 4 * 768, PAPER_VOCAB, PAPER_CONTEXT, 120_000_000),
    "toto-large": (1024, 16, 16, 4 * 1024, PAPER_VOCAB, PAPER_CONTEXT, 280_000_000),
    "toto-1b": (2048, 16, 22, 5632, PAPER_VOCAB, PAPER_CONTEXT, 1_100_000_000),
    # The μP scaling family (appendix Table 17).
    "a1": (256, 16, 12, 4 * 256, PAPER_VOCAB, PAPER_CONTEXT, 14_800_000),
    "a2": (512, 16, 16, 4 * 512, PAPER_VOCAB, PAPER_CONTEXT, 77_200_000),
    "a3": (768, 16, 20, 4 * 768, PAPER_VOCAB, PAPER_CONTEXT, 215_000_000),
    "a4": (1024, 16, 24, 4 * 1024, PAPER_VOCAB, PAPER_CONTEXT, 458_000_000),
    "a5": (1536, 16, 28, 4 * 1536, PAPER_VOCAB, PAPER_CONTEXT, 1_200_000_000),
    "a6": (1792, 16, 32, 4 * 1792, PAPER_VOCAB, PAPER_CONTEXT, 1_900_000_000),
}


def variants() -> dict[str, ModelConfig]:
    """Every named variant, name → config, in table order."""
    return {
        name: ModelConfig(
            vocab_size=vocab,
            dim=dim,
            n_heads=heads,
            n_layers=layers,
            ffn_dim=ffn,
            context_length=ctx,
            name=name,
        )  # fmt: skip
        for name, (dim, heads, layers, ffn, vocab, ctx, _) in _VARIANTS.items()
    }


def paper_params(name: str) -> int | None:
    """The parameter count the paper reports for a variant, or None for the CPU-sized ones."""
    return _VARIANTS[name][6] if name in _VARIANTS else None


def variant_table() -> list[dict[str, Any]]:
    """One row per named variant (what `toto-lens variants` shows): sizes, our and the paper's counts."""
    return [
        {
            "name": name, "width": c.dim, "heads": c.n_heads, "layers": c.n_layers, "ffn": c.ffn_dim,
            "vocab": c.vocab_size, "context": c.context_length, "params": c.num_params(),
            "paper_params": paper_params(name),
        }
        for name, c in variants().items()
    ]  # fmt: skip
