"""A user's colour images, end to end as they would run it: a tokenizer fitted on them, a model trained
on them, a store whose labels are the folders, and the studies that draw frames, all on RGB clips."""

import numpy as np
import pytest
from helpers import assert_usage_error, run_cli

from toto_lens import studies
from toto_lens.store import open_cache
from toto_lens.tokenizers import load_tokenizer


@pytest.fixture(scope="module")
def colour_folder(tmp_path_factory):
    """Class folders of colour squares whose grey values are equal: only colour tells the classes apart."""
    from PIL import Image

    root = tmp_path_factory.mktemp("colour") / "photos"
    rng = np.random.default_rng(1)
    for name, colour in {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}.items():
        (root / name).mkdir(parents=True)
        for i in range(10):
            a = np.zeros((36, 36, 3), np.uint8)
            r, c = rng.integers(0, 16, size=2)
            a[r : r + 20, c : c + 20] = colour
            Image.fromarray(a).save(root / name / f"{i}.png")
    return root


def test_fit_train_extract_and_study_colour_clips(colour_folder, tmp_path, capsys):
    data = f"image-folder:{colour_folder}?frames=4&size=32"
    code, out, err = run_cli(capsys, "tokenizer", "fit", "--kind", "kmeans", "--vocab", "32", "--data", data,
                             "--clips", "16", "--out", "colour-32")  # fmt: skip
    assert code == 0, err
    tok = load_tokenizer("colour-32")
    assert tok.spec["channels"] == 3, "a tokenizer fitted on RGB clips must code RGB patches"
    code, _, err = run_cli(capsys, "train", "--name", "colour", "--model", "toto-debug", "--data", data,
                           "--tokenizer", "colour-32", "--steps", "2", "--batch-size", "4",
                           "--train-clips", "16", "--val-clips", "8")  # fmt: skip
    assert code == 0, err
    store = tmp_path / "colour.zarr"
    code, _, err = run_cli(capsys, "extract", "--ckpt", "colour", "--split", "val", "--clips", "24",
                           "--out", str(store))  # fmt: skip
    assert code == 0, err
    ds = open_cache(path=store)
    assert ds["label"].attrs["flag_meanings"] == "blue green red" and "masks" not in ds
    assert ds["frame_label"].shape == (24, 4) and set(np.unique(ds["frame_label"].values)) <= {0, 1, 2}
    probing = studies.probing("colour", cache=ds, seeds=2)  # no --task: the folders' labels, by name
    assert list(probing.result["task"].values) == ["label", "frame_label"], (
        "the source's labels are the tasks"
    )
    best = probing.result["val_score"].sel(task="frame_label", probe="linear").mean("seed").max()
    chance = float(probing.result["chance"].sel(task="frame_label"))
    assert float(best) > chance + 0.3, f"colour decodes at {float(best):.2f} against chance {chance:.2f}"
    frames = tok.decode(ds["tokens"].values[0, 1:-1].reshape(4, *tok.grid) - 4)  # codes start at id 4
    assert frames.shape == (4, 32, 32, 3), "decoded frames of a colour tokenizer carry their channels"
    assert studies.attention("colour", cache=ds, clip=0).result["frames"].shape == (4, 32, 32)
    assert studies.generation("colour", cache=ds, clips=2).result["generated_frames"].ndim == 4


def test_grey_tokenizers_refuse_colour_clips_before_anything_runs(colour_folder, capsys):
    data = f"image-folder:{colour_folder}?frames=4"
    code, _, err = run_cli(capsys, "train", "--name", "grey", "--model", "toto-debug", "--data", data,
                           "--tokenizer", "kmeans-64", "--steps", "1")  # fmt: skip
    assert_usage_error(code, err, "3 channels (RGB) but the tokenizer kmeans-64 takes 1 (grey)")
