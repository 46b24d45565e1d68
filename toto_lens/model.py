"""The Toto transformer: a LLaMA-style causal decoder over visual tokens.

Pre-norm blocks with RMSNorm, rotary position embeddings, SwiGLU MLP, no biases, untied output head
(Toto main paper §3; LLaMA). Reads like nanoGPT's and gpt-fast's model files: architecture only, no
logging, no I/O. Two attention paths compute the same function:

* `scaled_dot_product_attention` (the default, fused), and
* an eager path (`model.set_attn_impl("eager")`) that materialises the pattern and passes it through
  the identity module `blocks.{i}.attn.hook_pattern`.

Three identity modules per attention layer are the model's only seams for looking inside: `hook_rot_q`,
`hook_rot_k` (the rotated queries and keys the scores are made of) and `hook_pattern`. Reading any
activation goes through `toto_lens.run.capture`, which gives them, and every module output, TransformerLens
names.

Incremental decoding uses a static KV cache (`setup_caches`, then `forward(tokens, input_pos)`),
as gpt-fast does. The parameter names here are the checkpoint's names; weights in Hugging Face or
Meta/gpt-fast layouts go through `toto_lens.convert` (renames, rotary row order, fused wqkv) first.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from toto_lens.config import ModelConfig

ATTN_IMPLS = ("sdpa", "eager")


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        # Normalise in fp32 for stability under bf16 autocast, as LLaMA does.
        y = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)
        return y.type_as(x) * self.weight


def rope_table(head_dim: int, length: int, base: float, device=None) -> tuple[Tensor, Tensor]:
    """cos and sin of the rotary angles, each (length, head_dim // 2), fp32."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(length, device=device, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate (B, H, T, hd) by the angles of its positions; cos/sin are (T, hd/2).

    The "rotate half" layout (pairs are (i, i + hd/2)): the same function as LLaMA's interleaved
    pairs up to a fixed permutation of the q/k features, and it needs no complex numbers.
    """
    x1, x2 = x.float().chunk(2, dim=-1)  # (B, H, T, hd/2) each
    rotated = torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)
    return rotated.type_as(x)


class KVCache(nn.Module):
    """Static key/value buffers for one attention layer, written at the positions being decoded."""

    def __init__(self, batch: int, kv_heads: int, length: int, head_dim: int, dtype, device) -> None:
        super().__init__()
        shape = (batch, kv_heads, length, head_dim)
        self.register_buffer("k", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v", torch.zeros(shape, dtype=dtype, device=device), persistent=False)

    def update(self, input_pos: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        b = k.shape[0]
        self.k[:b, :, input_pos] = k.to(self.k.dtype)
        self.v[:b, :, input_pos] = v.to(self.v.dtype)
        return self.k[:b], self.v[:b]


class Attention(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_heads, self.kv_heads, self.head_dim = config.n_heads, config.kv_heads, config.head_dim
        self.wq = nn.Linear(config.dim, config.n_heads * config.head_dim, bias=False)
        self.wk = nn.Linear(config.dim, config.kv_heads * config.head_dim, bias=False)
        self.wv = nn.Linear(config.dim, config.kv_heads * config.head_dim, bias=False)
        self.wo = nn.Linear(config.n_heads * config.head_dim, config.dim, bias=False)
        # μP scales logits by 1/hd instead of 1/sqrt(hd); written so both agree at the base width.
        if config.mup_base_width is None:
            self.scale = 1.0 / math.sqrt(self.head_dim)
        else:
            base_hd = config.mup_base_width // config.n_heads
            self.scale = math.sqrt(base_hd) / self.head_dim
        self.impl = "sdpa"
        self.hook_rot_q = nn.Identity()  # sees the rotated queries (B, H, T, hd)
        self.hook_rot_k = nn.Identity()  # sees the rotated keys (B, Hkv, T, hd), before the KV cache
        self.hook_pattern = nn.Identity()  # sees (B, H, T, S) softmax weights on the eager path
        self.kv_cache: KVCache | None = None

    def _rotated(self, x: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor]:
        """Queries (B, H, T, hd) and keys (B, Hkv, T, hd) of x, rotated by their positions."""
        B, T, _ = x.shape
        q = self.wq(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.wk(x).view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)
        return self.hook_rot_q(apply_rope(q, cos, sin)), self.hook_rot_k(apply_rope(k, cos, sin))

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, input_pos: Tensor | None) -> Tensor:
        B, T, _ = x.shape
        q, k = self._rotated(x, cos, sin)  # (B, H, T, hd), (B, Hkv, T, hd)
        v = self.wv(x).view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)  # (B, Hkv, T, hd)

        mask = None  # None = plain causal over the T tokens given
        if input_pos is not None:
            if self.kv_cache is None:
                raise RuntimeError("forward(input_pos=...) needs model.setup_caches(...) first")
            k, v = self.kv_cache.update(input_pos, k, v)  # (B, Hkv, S, hd), S = cache length
            k, v = k.to(q.dtype), v.to(q.dtype)
            # A query at position p sees cached keys at positions ≤ p; unwritten slots lie beyond p.
            mask = torch.arange(k.shape[2], device=x.device)[None, :] <= input_pos[:, None]  # (T, S)
        if self.kv_heads != self.n_heads:
            k = k.repeat_interleave(self.n_heads // self.kv_heads, dim=1)  # (B, H, S, hd)
            v = v.repeat_interleave(self.n_heads // self.kv_heads, dim=1)

        if self.impl == "sdpa":
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, is_causal=mask is None, scale=self.scale
            )
        else:
            scores = (q @ k.transpose(-2, -1)) * self.scale  # (B, H, T, S)
            if mask is None:
                mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
            scores = scores.masked_fill(~mask, float("-inf"))
            pattern = self.hook_pattern(torch.softmax(scores.float(), dim=-1).type_as(q))
            y = pattern @ v  # (B, H, T, hd)
        y = y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim)  # (B, T, D)
        return self.wo(y)


class FeedForward(nn.Module):
    """SwiGLU: w2(silu(w1 x) * w3 x), LLaMA's names (w1 gate, w3 up, w2 down)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.w1 = nn.Linear(config.dim, config.ffn_dim, bias=False)
        self.w3 = nn.Linear(config.dim, config.ffn_dim, bias=False)
        self.w2 = nn.Linear(config.ffn_dim, config.dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.attention_norm = RMSNorm(config.dim, config.norm_eps)
        self.attn = Attention(config)
        self.ffn_norm = RMSNorm(config.dim, config.norm_eps)
        self.mlp = FeedForward(config)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, input_pos: Tensor | None) -> Tensor:
        x = x + self.attn(self.attention_norm(x), cos, sin, input_pos)
        return x + self.mlp(self.ffn_norm(x))


class _NoInit(torch.overrides.TorchFunctionMode):
    """While active (in this thread only, as torch's function modes are): `torch.nn.init`'s functions
    return their tensor untouched, so modules are built without drawing initial values."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__module__", None) == "torch.nn.init":
            return args[0] if args else next(iter((kwargs or {}).values()))
        return func(*args, **(kwargs or {}))


class Toto(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.dim)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = RMSNorm(config.dim, config.norm_eps)
        self.output = nn.Linear(config.dim, config.vocab_size, bias=False)
        # μP's MuReadout: logits scaled by 1/m so that a zero-initialised readout trains at one LR.
        self.output_scale = 1.0 / config.mup_width_mult
        self.build_rope()
        self.init_weights()

    @classmethod
    def empty(cls, config: ModelConfig) -> Toto:
        """The model on the meta device, no initialiser run: for weights assigned next
        (`load_state_dict(state, assign=True)`). Initialising meta tensors would import torch's compiler,
        about 2 s of every checkpoint load, for values that do not exist."""
        with torch.device("meta"), _NoInit():
            return cls(config)

    def build_rope(self) -> None:
        """(Re)compute the rotary tables on the weights' device; they are derived, never saved."""
        device = self.tok_embeddings.weight.device
        if device.type == "meta":
            device = torch.device("cpu")  # not the default device: torch.device("meta") may be in force
        c = self.config
        cos, sin = rope_table(c.head_dim, c.context_length, c.rope_base, device=device)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    def _apply(self, fn, recurse=True):
        # .to(dtype) / .half() would cast the rotary tables too; they stay fp32 whatever the weights are.
        super()._apply(fn, recurse)
        self.build_rope()
        return self

    @torch.no_grad()
    def init_weights(self) -> None:
        """Every initial value in one place (μP changes only this and the optimiser's groups).

        GPT-2/nanoGPT: N(0, init_std) for matrices and embeddings, residual projections (wo, w2)
        scaled down by sqrt(2 · n_layers). Under μP (m = width / base): hidden matrices' std shrinks
        by 1/sqrt(m) (variance ∝ 1/fan_in) and the readout starts at zero (MuReadout), see
        PROTOCOLS.md.
        """
        if self.tok_embeddings.weight.is_meta:
            return  # no values to set: see `empty`
        c = self.config
        std, m = c.init_std, c.mup_width_mult
        for name, p in self.named_parameters():
            if name.endswith("norm.weight"):
                nn.init.ones_(p)
            elif name == "tok_embeddings.weight":
                nn.init.normal_(p, std=std)
            elif name == "output.weight":
                if c.mup_base_width is None:
                    nn.init.normal_(p, std=std)
                else:
                    nn.init.zeros_(p)
            else:
                s = std / math.sqrt(m)
                if name.endswith(("attn.wo.weight", "mlp.w2.weight")):
                    s /= math.sqrt(2 * c.n_layers)
                nn.init.normal_(p, std=s)

    def set_attn_impl(self, impl: str) -> Toto:
        """ "sdpa" (fused, default) or "eager" (materialises the patterns `hook_pattern` sees)."""
        if impl not in ATTN_IMPLS:
            raise ValueError(f"attention implementation must be one of {ATTN_IMPLS}, got {impl!r}")
        for block in self.blocks:
            block.attn.impl = impl
        return self

    def setup_caches(self, max_batch_size: int, max_seq_len: int | None = None, dtype=None) -> None:
        """Allocate a KV cache per layer for incremental decoding; `reset_caches` frees them."""
        c = self.config
        length = max_seq_len or c.context_length
        if length > c.context_length:
            raise ValueError(f"max_seq_len {length} exceeds the context length {c.context_length}")
        weight = self.output.weight
        for block in self.blocks:
            block.attn.kv_cache = KVCache(
                max_batch_size, c.kv_heads, length, c.head_dim, dtype or weight.dtype, weight.device
            )

    def reset_caches(self) -> None:
        for block in self.blocks:
            block.attn.kv_cache = None

    def forward(self, tokens: Tensor, input_pos: Tensor | None = None) -> Tensor:
        """Logits (B, T, vocab) for tokens (B, T).

        input_pos (T,): absolute positions of `tokens` when decoding with the KV cache; None means the
        tokens start at position 0 and no cache is used.
        """
        B, T = tokens.shape
        if input_pos is None:
            if T > self.config.context_length:
                raise ValueError(
                    f"sequence of {T} tokens exceeds the context length {self.config.context_length}"
                )
            cos, sin = self.rope_cos[:T], self.rope_sin[:T]
        else:
            cos, sin = self.rope_cos[input_pos], self.rope_sin[input_pos]
        x = self.tok_embeddings(tokens)  # (B, T, D)
        for block in self.blocks:
            x = block(x, cos, sin, input_pos)
        logits = self.output(self.norm(x))  # (B, T, V)
        if self.output_scale != 1.0:
            logits = logits * self.output_scale
        return logits

    @torch.no_grad()
    def generate(
        self,
        prompt: Tensor,
        max_new_tokens: int,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Continue prompt (B, T0) by max_new_tokens with the KV cache; temperature 0 is greedy."""
        B, T0 = prompt.shape
        total = T0 + max_new_tokens
        self.setup_caches(B, total)
        try:
            out = torch.empty(B, total, dtype=prompt.dtype, device=prompt.device)
            out[:, :T0] = prompt
            logits = self(prompt, torch.arange(T0, device=prompt.device))[:, -1]
            for t in range(T0, total):
                out[:, t] = _sample(logits, temperature, top_k, generator)
                if t + 1 < total:
                    logits = self(out[:, t : t + 1], torch.tensor([t], device=prompt.device))[:, -1]
        finally:
            self.reset_caches()
        return out


def _sample(logits: Tensor, temperature: float, top_k: int | None, generator) -> Tensor:
    if temperature <= 0:
        return logits.argmax(-1)
    logits = logits.float() / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.multinomial(torch.softmax(logits, -1), 1, generator=generator).squeeze(-1)
