"""μP coordinate check (Yang et al., Tensor Programs V, §D; the `mup` package's `get_coord_data`).

Train models of growing width for a few steps at one learning rate and record the mean |activation| of
every layer's output. Under μP the curves stay flat as width grows; under the standard
parameterisation they grow, which is why its best learning rate shifts with width. Depth, heads and
data are fixed; only the width changes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from toto_lens.config import ModelConfig
from toto_lens.model import Toto
from toto_lens.run.hooks import capture
from toto_lens.train.config import TrainConfig
from toto_lens.train.optim import make_optimizer, set_lr


def coord_check(
    widths: list[int],
    *,
    mup: bool,
    steps: int = 4,
    lr: float = 1e-2,
    base_width: int | None = None,
    n_layers: int = 2,
    n_heads: int = 4,
    vocab: int = 68,
    seq_len: int = 128,
    batch: int = 8,
    seed: int = 0,
) -> dict[int, list[float]]:
    """width → mean |output| of the embedding, each block, and the logits, after `steps` Adam steps."""
    base = base_width or min(widths)
    g = torch.Generator().manual_seed(seed)
    data = torch.randint(
        4, vocab, (steps + 1, batch, seq_len), generator=g
    )  # the same batches for every width
    out = {}
    for width in widths:
        config = ModelConfig(
            vocab_size=vocab, dim=width, n_layers=n_layers, n_heads=n_heads, ffn_dim=4 * width,
            context_length=seq_len, mup_base_width=base if mup else None,
        )  # fmt: skip
        torch.manual_seed(seed)
        model = Toto(config)
        optimizer = make_optimizer(
            model, TrainConfig(mup=mup, lr=lr, weight_decay=0.0), config.mup_width_mult
        )
        set_lr(optimizer, lr)
        for x in data[:steps]:
            loss = F.cross_entropy(model(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten())
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        sizes: list[float] = []
        names = ["hook_embed", "blocks.*.hook_resid_post"]  # in forward order: embeddings, each block
        with (
            torch.no_grad(),
            capture(model, names, lambda _n, x, sizes=sizes: sizes.append(x.abs().mean().item())),
        ):
            logits = model(data[steps][:, :-1])
        out[width] = sizes + [logits.abs().mean().item()]
    return out
