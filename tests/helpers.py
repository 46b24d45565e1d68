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


def run_cli_readonly(readonly, *args: str, env=None, timeout: float = 300):
    """`toto-lens ARGS` in a child process that cannot write under the folder `readonly`.

    As root, permission bits do not stop a write, so the child runs in its own mount namespace where
    `readonly` is bind-mounted read-only (what a read-only share or a full disk looks like to a program);
    as another user the folder is made read-only with chmod. Returns the CompletedProcess (text).
    """
    import os
    import subprocess
    import sys

    readonly = str(readonly)
    command = [sys.executable, "-c", "from toto_lens.cli import main; main()", *args]
    if os.geteuid() == 0:
        script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
        command = ["unshare", "-m", "sh", "-c", script, readonly, *command]
    else:
        os.chmod(readonly, 0o555)
    try:
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    finally:
        if os.geteuid() != 0:
            os.chmod(readonly, 0o755)


def assert_usage_error(code: int, err: str, message: str) -> None:
    """A command refused its input the way every command must: exit 2 and one line, `error: …` naming
    `message` (no traceback, no second line)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), (code, err)
    assert message in lines[0], lines[0]
