"""`toto-lens data preview` and `data materialise`: real files a person can open."""

import numpy as np
import pytest
from helpers import run_cli
from PIL import Image

from toto_lens.data import ClipStore, MovingDigits
from toto_lens.figures.clips import OBJECT_COLOURS, clip_label, clip_rows, tinted


def test_png_preview_shows_every_clip(tmp_path, capsys):
    out = tmp_path / "p.png"
    assert run_cli(capsys, "data", "preview", "--n", "3", "--out", str(out))[0] == 0
    image = np.asarray(Image.open(out).convert("RGB"))
    # Three clips, each 2 × 32 px strips zoomed 3× plus label rows: the picture must be that tall at least.
    assert image.shape[0] > 3 * 2 * 32 * 3 and image.shape[1] > 16 * 32 * 3
    red = np.all(np.abs(image.astype(int) - (0.65 * OBJECT_COLOURS[1]).astype(int)) < 90, axis=-1)
    assert red.sum() > 100, "object 1 should appear tinted in the mask strip"


def test_gif_preview_is_animated_over_frames(tmp_path, capsys):
    out = tmp_path / "p.gif"
    assert run_cli(capsys, "data", "preview", "--n", "2", "--data", "image-digits", "--out", str(out))[0] == 0
    assert Image.open(out).n_frames == 16


def test_html_preview_is_self_contained(tmp_path, capsys):
    out = tmp_path / "p.html"
    assert run_cli(capsys, "data", "preview", "--n", "2", "--out", str(out))[0] == 0
    text = out.read_text()
    assert "data:image/png;base64" in text and '<script src="http' not in text and "plotly" in text
    again = f"toto-lens data preview --n 2 --data moving-digits --split val --seed 0 --out {out}"
    assert "<title>" in text and again in text, "the page names itself and the command that writes it again"


def test_bad_suffix_is_a_one_line_error(tmp_path, capsys):
    code, _, err = run_cli(capsys, "data", "preview", "--out", str(tmp_path / "p.txt"))
    assert code == 2
    assert err.startswith("error: ") and ".png, .gif or .html" in err and err.count("\n") == 1
    assert not (tmp_path / "p.txt").exists()


def test_labels_and_tints_describe_the_clip():
    clip = MovingDigits("val", 1)[0]
    assert f"digit {clip.digit}" in clip_label(clip)
    rgb = tinted(clip.frames, clip.masks)
    on = clip.masks > 0
    assert np.allclose(rgb[~on], clip.frames[~on][:, None] * 255), "background must stay grey"
    assert clip_rows(clip).shape == (2 * 32 + 2, 16 * 34 - 2, 3)


def test_materialise_command(tmp_path, capsys):
    out = tmp_path / "clips"
    assert run_cli(capsys, "data", "materialise", "--clips", "3", "--split", "val", "--out", str(out))[0] == 0
    store = ClipStore(out)
    assert len(store) == 3 and np.array_equal(store[2].frames, MovingDigits("val", 3)[2].frames)
    assert run_cli(capsys, "data", "materialise", "--clips", "3", "--out", str(out))[0] == 2, (
        "must refuse to overwrite"
    )


@pytest.mark.parametrize("args", [["--data", "kinetics"], ["--split", "dev"]])
def test_unknown_data_or_split(tmp_path, capsys, args):
    code, _, err = run_cli(capsys, "data", "preview", "--out", str(tmp_path / "x.png"), *args)
    assert code == 2 and err.startswith("error: unknown")
