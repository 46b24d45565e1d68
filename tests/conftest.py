from contextlib import contextmanager

import pytest
import torch

from toto_lens.config import ModelConfig


@pytest.fixture(scope="session")
def _shared_derived(tmp_path_factory):
    """Fitted tokenizers and token pools are deterministic: tests share them instead of refitting."""
    root = tmp_path_factory.mktemp("shared-cache")
    for sub in ("tokenizers", "tokens"):
        (root / sub).mkdir()
    return root


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch, _shared_derived):
    """Every test gets its own empty checkpoint registry (outside its tmp_path), never the user's cache/."""
    cache = tmp_path_factory.mktemp("cache")
    for sub in ("tokenizers", "tokens"):
        (cache / sub).symlink_to(_shared_derived / sub)
    monkeypatch.setenv("TOTO_LENS_CACHE", str(cache))
    torch.manual_seed(0)


@pytest.fixture
def tiny_config() -> ModelConfig:
    return ModelConfig(
        vocab_size=40, dim=32, n_layers=2, n_heads=4, ffn_dim=64, context_length=64, name="test"
    )


@pytest.fixture(params=[None, 2], ids=["mha", "gqa"])
def any_config(request, tiny_config) -> ModelConfig:
    return tiny_config.replace(n_kv_heads=request.param)


@pytest.fixture(scope="session")
def cache_root(tmp_path_factory, _shared_derived):
    """For fixtures wider than one test: `with cache_root("label") as root:` makes a fresh cache root that
    shares the fitted tokenizers and token pools, with TOTO_LENS_CACHE pointing at it inside the block."""

    @contextmanager
    def make(label: str):
        root = tmp_path_factory.mktemp(label)
        for sub in ("tokenizers", "tokens"):
            (root / sub).symlink_to(_shared_derived / sub)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("TOTO_LENS_CACHE", str(root))
            yield root

    return make


@pytest.fixture(scope="session")
def demo_run(cache_root):
    """The model `make demo` trains (the defaults), trained once per session, and its extracted cache.

    Returns (checkpoint folder, cache store). Slow (about 6 minutes on 2 cores): only `slow` tests use it.
    """
    from toto_lens.run import extract
    from toto_lens.train import TrainConfig, train

    with cache_root("demo-cache") as root:
        torch.manual_seed(0)
        result = train(TrainConfig(), "demo")
        store = root / "demo" / "moving-digits-val.zarr"
        extract(result.path, acts=("pooled", "frame", "token"), out=store)
    return result, store


@pytest.fixture(scope="session")
def demo_images(demo_run):
    """The demo model's cache of the image-digits validation clips, as `make demo` extracts it (per-token
    activations for the first 128 clips). Each frame is one independent digit image: the image
    classification probe (`frame_digit`) reads it."""
    from toto_lens.run import extract

    result, store = demo_run
    images = store.parent / "image-digits-val.zarr"
    extract(result.path, data="image-digits", acts=("pooled", "frame", "token"), token_clips=128, out=images)
    return images
