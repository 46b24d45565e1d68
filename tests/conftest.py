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
