"""The notebook tests' fixture: a small checkpoint and its cache, made once per session."""

import pytest


@pytest.fixture(scope="session")
def notebook_cache(cache_root):
    """A cache root holding two untrained toto-debug checkpoints of one "run" (`nb-early`, `nb`) and the
    cache of `nb` (32 validation clips of moving digits; every layer; pooled, per-frame and per-token
    activations; attention per frame pair and full patterns of 2 clips), as `make demo` writes it for
    `demo`, and a short real run `nb-run` that kept snapshots at steps 0, 2 and 4 (`--snapshot-every 2`).
    Returns the root: a notebook's kernel reads it through TOTO_LENS_CACHE."""
    from extract_helpers import make_checkpoint

    from toto_lens.run import extract
    from toto_lens.train import TrainConfig, train

    with cache_root("notebook-cache") as root:
        make_checkpoint("nb-early", seed=1)
        make_checkpoint("nb")
        extract(
            "nb",
            clips=32,
            batch_size=16,
            acts=("pooled", "frame", "token"),
            attn=("frame", "pattern"),
            pattern_clips=2,
        )
        run = TrainConfig(model="toto-debug", tokenizer="kmeans-64", steps=4, batch_size=4, train_clips=16,
                          val_clips=4, eval_every=4, warmup=2, threads=1, snapshot_every=2)  # fmt: skip
        train(run, "nb-run")
    return root
