import pytest
import torch

from toto_lens.config import ModelConfig


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own empty registry, never the user's cache/."""
    monkeypatch.setenv("TOTO_LENS_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)


@pytest.fixture
def tiny_config() -> ModelConfig:
    return ModelConfig(
        vocab_size=40, dim=32, n_layers=2, n_heads=4, ffn_dim=64, context_length=64, name="test"
    )


@pytest.fixture(params=[None, 2], ids=["mha", "gqa"])
def any_config(request, tiny_config) -> ModelConfig:
    return tiny_config.replace(n_kv_heads=request.param)
