"""Training from token shards (`--data tokens:PATH`): the batches are read from the memory-mapped shards
when drawn, never held whole, and are the batches the same clips give in memory."""

import numpy as np
import torch

from toto_lens import load_checkpoint
from toto_lens.data import Layout, open_source
from toto_lens.data.sources.tokens import write_token_shards
from toto_lens.tokenizers import load_tokenizer
from toto_lens.train import TrainConfig, train
from toto_lens.train.data import ShardPool, TokenPools, build_pools, cached_tokens


def _shards(tmp_path, name="image-digits", clips=10, val=0):
    tok = load_tokenizer("kmeans-64")
    source = open_source(name, split="train", n_clips=clips, seed=0)
    write_token_shards(source, tok, tmp_path / "shards", shard_clips=4)  # shards of 4, 4 and 2 clips
    if val:
        write_token_shards(open_source(name, split="val", n_clips=val, seed=0), tok, tmp_path / "shards")
    return tok, source, f"tokens:{tmp_path / 'shards'}"


def test_a_shard_pool_gives_the_packed_clips_across_shards_and_reads_them_when_drawn(tmp_path):
    tok, source, data = _shards(tmp_path)
    layout = Layout(source[0].num_frames, *tok.grid)
    pool = cached_tokens(data, "train", 10, 0, tok, layout)
    assert isinstance(pool, ShardPool) and pool.shape == (10, layout.length)
    rows = np.array([9, 0, 4, 4, 7, 3])  # every shard, a repeat, out of order
    expected = layout.encode_clips([source[int(i)] for i in rows], tok)
    assert np.array_equal(pool[rows], expected), "a drawn row must be its clip packed as in memory"
    assert np.array_equal(pool[2:5], layout.encode_clips([source[i] for i in (2, 3, 4)], tok)), "a slice"
    # Read when drawn: codes written into shard 1 after the pool was built show up in the next draw.
    shard = np.memmap(tmp_path / "shards" / "train" / "codes-00001.bin", dtype=np.uint16, mode="r+")
    shard[:] = 3
    shard.flush()
    again = pool[np.array([5, 0])]
    assert (again[0, 1:-1] == 3 + layout.code_offset).all(), "the pool must read the shards, not a copy"
    assert np.array_equal(again[1], expected[1]), "other shards are unchanged"


def test_batches_from_shards_equal_batches_from_the_same_tokens_in_memory(tmp_path):
    tok, source, data = _shards(tmp_path, "moving-digits", 12)
    layout = Layout(source[0].num_frames, *tok.grid)
    lazy = cached_tokens(data, "train", 12, 0, tok, layout)
    held = lazy[: len(lazy)]
    a = TokenPools(["s"], np.array([1.0]), [lazy], [held[:2]], layout)
    b = TokenPools(["s"], np.array([1.0]), [held], [held[:2]], layout)
    for step in (0, 1, 7):
        assert np.array_equal(a.batch(0, step, 8), b.batch(0, step, 8)), f"step {step}'s batch differs"


def test_training_on_shards_is_training_on_their_clips(tmp_path):
    _, _, data = _shards(tmp_path, "image-digits", 16, val=4)
    cfg = TrainConfig(
        model="toto-debug", tokenizer="kmeans-64", steps=2, batch_size=4, train_clips=16, val_clips=4,
        eval_every=2, log_every=1, ckpt_every=2, warmup=1, threads=1, data_seed=0,
    )  # fmt: skip
    pools = build_pools(cfg.replace(data=data), load_tokenizer("kmeans-64"))
    assert isinstance(pools.train[0], ShardPool), "shards must train from disk, not from a copy in memory"
    runs = {}
    for label, source in (("shards", data), ("clips", "image-digits")):
        result = train(cfg.replace(data=source), name=str(tmp_path / f"run-{label}"))
        assert result.complete and np.isfinite(result.metrics["val_loss"]), f"the run on {label} must train"
        runs[label] = result
    a, b = (load_checkpoint(runs[k].path).model.state_dict() for k in ("shards", "clips"))
    assert all(torch.equal(a[k], b[k]) for k in a), (
        "the same clips read from shards must give the same batches, hence the same weights"
    )
