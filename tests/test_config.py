import dataclasses
import json

import pytest
import torch

from toto_lens import ModelConfig, Toto, variants
from toto_lens.config import paper_params
from toto_lens.errors import ConfigError


@pytest.mark.parametrize("name", ["toto-base", "toto-large", "toto-1b"])
def test_main_variants_within_ten_percent_of_paper(name):
    config = variants()[name]
    ratio = config.num_params() / paper_params(name)
    assert 0.9 <= ratio <= 1.1, f"{name} has {config.num_params():,} parameters, {ratio:.2f}× the paper's"


def test_paper_dimensions():
    v = variants()
    assert (v["toto-base"].dim, v["toto-base"].n_heads, v["toto-base"].n_layers) == (768, 12, 12)
    assert (v["toto-large"].dim, v["toto-large"].n_heads, v["toto-large"].n_layers) == (1024, 16, 16)
    assert (v["toto-1b"].dim, v["toto-1b"].n_heads, v["toto-1b"].n_layers) == (2048, 16, 22)
    widths = [v[f"a{i}"].dim for i in range(1, 7)]
    depths = [v[f"a{i}"].n_layers for i in range(1, 7)]
    assert widths == [256, 512, 768, 1024, 1536, 1792] and depths == [12, 16, 20, 24, 28, 32]
    assert all(v[f"a{i}"].n_heads == 16 for i in range(1, 7))
    small = [c.dim for n, c in v.items() if paper_params(n) is None]
    assert min(small) <= 64 and max(small) >= 256, "CPU-sized variants should span widths 64 … 256"


@pytest.mark.parametrize("name", list(variants()))
def test_num_params_matches_the_built_model(name):
    # Built on the meta device: shapes only, so even toto-1b costs nothing.
    config = variants()[name]
    with torch.device("meta"):
        model = Toto(config)
    assert sum(p.numel() for p in model.parameters()) == config.num_params()


def test_gqa_param_count(tiny_config):
    config = tiny_config.replace(n_kv_heads=2)
    assert sum(p.numel() for p in Toto(config).parameters()) == config.num_params()


def test_config_is_frozen_and_round_trips_through_json(tiny_config):
    with pytest.raises(dataclasses.FrozenInstanceError):
        tiny_config.dim = 7
    again = ModelConfig.from_dict(json.loads(json.dumps(tiny_config.to_dict())))
    assert again == tiny_config and again.name == tiny_config.name


def test_special_ids_and_code_offset():
    c = variants()["toto-large"]
    assert (c.video_start_id, c.end_id, c.image_start_id) == (1, 2, 3)
    assert c.code_offset == 4 and c.num_codes == 8192


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"dim": 30}, "not divisible by n_heads"),
        ({"n_layers": 0}, "n_layers must be a positive integer"),
        ({"n_kv_heads": 3}, "multiple of n_kv_heads"),
        ({"vocab_size": 3}, "special ids"),
    ],
)
def test_invalid_configs_say_what_is_wrong(tiny_config, changes, words):
    with pytest.raises(ConfigError, match=words):
        tiny_config.replace(**changes)


def test_from_dict_names_unknown_and_missing_fields(tiny_config):
    data = tiny_config.to_dict()
    with pytest.raises(ConfigError, match="unknown field.*colour"):
        ModelConfig.from_dict({**data, "colour": "red"})
    del data["dim"]
    with pytest.raises(ConfigError, match="missing field.*dim"):
        ModelConfig.from_dict(data)


def test_from_name_unknown_lists_the_choices():
    with pytest.raises(ConfigError, match="toto-large"):
        ModelConfig.from_name("toto-huge")
