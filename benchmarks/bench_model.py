"""Model and checkpoint speed against plain baselines, side by side in one run; prints ratios.

1. Forward throughput, fused SDPA attention vs the eager path (which materialises patterns).
2. Decoding with the KV cache (`Toto.generate`) vs recomputing the whole prefix for every new token.
3. `load_checkpoint` (meta-device construction + assign) vs the plain way: build the model with random
   init, then `load_state_dict(safetensors.load_file(...))`.

Usage: python benchmarks/bench_model.py [--threads 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from _timing import best_of
from safetensors.torch import load_file

from toto_lens import Toto, load_checkpoint, save_checkpoint, variants


def forward(repeat: int) -> None:
    config = variants()["toto-small"]
    model = Toto(config).eval()
    x = torch.randint(4, config.vocab_size, (4, config.context_length))
    tokens = x.numel()
    with torch.no_grad():
        t_sdpa = best_of(lambda: model(x), repeat)[0]
        model.set_attn_impl("eager")
        t_eager = best_of(lambda: model(x), repeat)[0]
    print(
        f"forward  toto-small B=4 T={config.context_length}: sdpa {tokens / t_sdpa:,.0f} tok/s, "
        f"eager {tokens / t_eager:,.0f} tok/s  → sdpa is {t_eager / t_sdpa:.2f}× faster"
    )


def decode(repeat: int) -> None:
    config = variants()["toto-tiny"]
    model = Toto(config).eval()
    prompt = torch.randint(4, config.vocab_size, (1, 65))
    n = 192

    def recompute():
        out = prompt
        with torch.no_grad():
            for _ in range(n):
                out = torch.cat([out, model(out)[:, -1:].argmax(-1)], dim=1)
        return out

    t_cache = best_of(lambda: model.generate(prompt, n, temperature=0), repeat)[0]
    t_plain = best_of(recompute, repeat)[0]
    same = torch.equal(model.generate(prompt, n, temperature=0), recompute())
    print(
        f"decode   toto-tiny {n} tokens after 65: kv-cache {n / t_cache:,.0f} tok/s, "
        f"recompute {n / t_plain:,.0f} tok/s  → {t_plain / t_cache:.2f}× faster (same tokens: {same})"
    )


def load(repeat: int) -> None:
    config = variants()["toto-base"]
    with tempfile.TemporaryDirectory() as tmp:
        path = save_checkpoint(Toto(config), f"{tmp}/base")

        def plain():
            model = Toto(config)
            model.load_state_dict(load_file(str(path / "model.safetensors")))
            return model

        t_ours = best_of(lambda: load_checkpoint(path), repeat)[0]
        t_ours_noverify = best_of(lambda: load_checkpoint(path, verify=False), repeat)[0]
        t_plain = best_of(plain, repeat)[0]
    print(
        f"load     toto-base ({config.num_params() / 1e6:.0f}M): load_checkpoint {t_ours:.2f} s "
        f"(without sha256 {t_ours_noverify:.2f} s), plain init+load_state_dict {t_plain:.2f} s "
        f"→ {t_plain / t_ours:.2f}× ({t_plain / t_ours_noverify:.2f}× without sha256)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    forward(args.repeat)
    decode(args.repeat)
    load(args.repeat)


if __name__ == "__main__":
    main()
