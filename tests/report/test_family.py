"""Families load whole and are refused with one line when wrong; `--only` knows the sections."""

import pytest
from helpers import assert_usage_error, run_cli

from toto_lens.errors import ConfigError
from toto_lens.report import family_names, load_family, section_ids
from toto_lens.report.sections import SECTIONS


@pytest.mark.parametrize("name", family_names())
def test_every_bundled_family_trains_valid_runs(name, tmp_path, monkeypatch):
    """A family whose run would be refused by the trainer would fail only after minutes of earlier work."""
    from toto_lens.train import check_run

    monkeypatch.setenv("TOTO_LENS_CACHE", str(tmp_path))
    fam = load_family(name)
    assert [s.label for s in fam.sizes] == ["base", "large", "1b"], "the three sizes stand for the paper's"
    for size in fam.sizes:
        check_run(fam.train_config(size), fam.checkpoint(size))
    assert fam["mup"]["widths"] == sorted(fam["mup"]["widths"]) and len(fam["mup"]["widths"]) >= 2


def test_a_users_family_file_scales_a_table_and_keeps_the_defaults(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('[big]\nsizes = [{ label = "base", model = "toto-tiny" }]\ntrain = { steps = 7 }\n')
    fam = load_family(str(path))
    assert fam.name == "big" and fam["train"]["steps"] == 7
    assert fam["train"]["batch_size"] == 8, "keys left out take the defaults"
    assert load_family(f"{path}:big") == fam


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[x]\nsizes = [{ model = "toto-tiny" }]\ntrain = { stepz = 3 }\n', "train.stepz is not a setting"),
        ('[x]\nsizes = [{ model = "toto-tiny" }]\ntrain = { steps = "many" }\n', "train.steps = 'many'"),
        ('[x]\nsizes = [{ model = "toto-huge" }]\n', "toto-huge"),
        ("[x]\nsizez = []\n", "unknown key 'sizez'"),
        ("[x]\nsizes = []\n", "at least one model"),
        ("[x\n", "cannot read the family file"),
    ],
)
def test_a_bad_family_is_one_line_naming_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=None) as e:
        load_family(str(path))
    assert message in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_only_takes_ids_aliases_and_comma_lists():
    assert section_ids(["fig9,fig13", "table14", "fig9"]) == ["fig9", "fig12", "fig7"]
    with pytest.raises(ConfigError, match="fig99"):
        section_ids(["fig99"])
    assert len({s.id for s in SECTIONS}) == len(SECTIONS)


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--family", "nope"], "choose one of smoke, cpu, paper"), (["--only", "fig99"], "--only 'fig99'")],
)
def test_figures_refuses_bad_input_before_any_work(capsys, tmp_path, args, message):
    code, _, err = run_cli(capsys, "figures", "--out", str(tmp_path / "r"), *args)
    assert_usage_error(code, err, message)
    assert not (tmp_path / "r").exists(), "nothing is written for a refused command"
