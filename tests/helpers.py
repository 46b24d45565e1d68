"""What several test modules share: running the CLI in-process as a user's shell would."""

from toto_lens.cli import main


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """`toto-lens ARGS` in this process; returns (exit code, stdout, stderr)."""
    code = 0
    try:
        main(list(args))
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


def reference_patterns(model, tokens):
    """Every layer's attention pattern (B, H, T, T), recomputed from the weights by hand: no hooks, no
    eager path, nothing of `capture`, so it can check them. Also returns the residual stream per layer."""
    import math

    import torch

    from toto_lens.model import apply_rope

    T = tokens.shape[1]
    cos, sin = model.rope_cos[:T], model.rope_sin[:T]
    x = model.tok_embeddings(tokens)
    states, patterns = [x], []
    for block in model.blocks:
        attn, h = block.attn, block.attention_norm(x)
        B = h.shape[0]
        q = attn.wq(h).view(B, T, attn.n_heads, attn.head_dim).transpose(1, 2)
        k = attn.wk(h).view(B, T, attn.kv_heads, attn.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        k = k.repeat_interleave(attn.n_heads // attn.kv_heads, dim=1)
        c, hd = model.config, attn.head_dim
        scale = (
            1 / math.sqrt(hd) if c.mup_base_width is None else math.sqrt(c.mup_base_width // c.n_heads) / hd
        )
        scores = (q @ k.transpose(-2, -1)) * scale
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        patterns.append(scores.masked_fill(~causal, float("-inf")).softmax(-1))
        x = block(x, cos, sin, None)
        states.append(x)
    return patterns, states
