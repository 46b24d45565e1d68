"""`studies.generation` and `toto-lens generate`: sampled clips of a real store, decoded and scored."""

import json

import numpy as np
import pytest
import xarray as xr
from extract_helpers import make_checkpoint
from helpers import assert_usage_error, run_cli
from PIL import Image

from toto_lens import open_cache, studies
from toto_lens.data.layout import layout_of
from toto_lens.run import extract
from toto_lens.store.reader import cache_tokenizer


@pytest.fixture
def gen_store():
    """A real (randomly initialised) checkpoint and its default store of 6 clips."""
    make_checkpoint("geny")
    extract("geny", clips=6, batch_size=6, acts=("pooled",))
    return open_cache("geny")


def test_cli_writes_ids_gif_numbers_and_page_and_keeps_the_prompt(gen_store, capsys, tmp_path):
    out = tmp_path / "gen"
    args = ["--ckpt", "geny", "--clips", "2", "--prompt-frames", "2", "--temperature", "0", "--out", str(out)]
    code, printed, err = run_cli(capsys, "generate", *args, "--json")
    assert code == 0, err
    data = json.loads(printed)
    assert {k: data[k] for k in ("data", "figure", "tokens", "gif")} == {
        "data": str(out / "generation.nc"), "figure": str(out / "generation.html"),
        "tokens": str(out / "tokens.npy"), "gif": str(out / "clips.gif"),
    }  # fmt: skip
    layout = layout_of(gen_store)
    ids = np.load(out / "tokens.npy")
    real = gen_store["tokens"].values[:2]
    assert ids.shape == (2, layout.length) and ids.dtype == np.int64
    given = 1 + 2 * layout.tokens_per_frame
    np.testing.assert_array_equal(ids[:, :given], real[:, :given])  # start token and the 2 frames given
    assert (ids[:, -1] == layout.end_id).all()
    visual = ids[:, given:-1]
    assert (visual >= layout.code_offset).all(), "a special id was sampled at a visual position"
    assert Image.open(out / "clips.gif").n_frames == layout.frames
    page = (out / "generation.html").read_text(encoding="utf-8")
    assert f"--temperature 0.0 --seed 0 --out {out}<" in page or f"--out {out}" in page
    assert f"--out {out}/generation.nc" not in page, (
        "the command to run again names the folder, not a file in it"
    )
    # greedy: the study run again gives the same ids
    again = studies.generation("geny", clips=2, prompt_frames=2, temperature=0)
    np.testing.assert_array_equal(again.result["tokens"].values, ids)


def test_quality_rows_equal_an_independent_recomputation(gen_store):
    from skimage.metrics import peak_signal_noise_ratio

    result = studies.generation("geny", clips=2, prompt_frames=1, temperature=0).result
    layout = layout_of(gen_store)
    tok = cache_tokenizer(gen_store)
    real = gen_store["tokens"].values[:2]
    codes = real[:, 1:-1].reshape(2, layout.frames, layout.rows, layout.cols) - layout.code_offset
    truth = np.asarray(tok.decode(codes), dtype=np.float32)
    np.testing.assert_allclose(result["true_frames"].values, truth)
    copy_psnr = [peak_signal_noise_ratio(truth[c, t], truth[c, 0], data_range=1.0)
                 for c in range(2) for t in range(1, layout.frames)]  # fmt: skip
    np.testing.assert_allclose(
        result["psnr"].sel(continuation="copy-last").values.ravel(), np.minimum(copy_psnr, 100), rtol=1e-5
    )
    truth_row = result.sel(continuation="truth")
    assert (truth_row["ssim"] == 1).all() and (truth_row["psnr"] == 100).all() and truth_row["frechet"] == 0
    assert list(result["frame"].values) == list(range(1, layout.frames)), (
        "quality counts the frames after the prompt"
    )


def test_from_the_start_token_alone_there_is_no_copy_last(gen_store):
    result = studies.generation(
        "geny", clips=2, prompt_frames=0, start="image", temperature=1.0, seed=3
    ).result
    copy_last = result.sel(continuation="copy-last")
    for name in ("psnr", "ssim", "ngram_js_1", "ngram_js_2", "frechet"):
        assert np.isnan(copy_last[name]).all(), f"{name} of copy-last with nothing to copy"
    assert (result["tokens"].values[:, 0] == layout_of(gen_store).image_start_id).all()
    saved = result.copy()
    other = studies.generation(
        "geny", clips=2, prompt_frames=0, start="image", temperature=1.0, seed=4
    ).result
    assert not np.array_equal(saved["tokens"].values, other["tokens"].values), (
        "another seed samples other clips"
    )


@pytest.mark.parametrize(
    "args, message",
    [(["--prompt-frames", "99"], "prompt frames 99"),
     (["--start", "audio"], "choose video"),
     (["--temperature", "-1"], "temperature must be ≥ 0"),
     (["--clips", "60"], "the cache has 6 complete clips")],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(gen_store, capsys, tmp_path, args, message):
    code, out, err = run_cli(
        capsys, "generate", "--ckpt", "geny", "--clips", "2", *args, "--out", str(tmp_path / "g")
    )
    assert_usage_error(code, err, message)
    assert not (tmp_path / "g" / "tokens.npy").exists()


def test_saved_result_reads_back(gen_store, tmp_path):
    study = studies.generation("geny", clips=2, prompt_frames=1, temperature=0)
    written = study.save(tmp_path / "g.nc")
    back = xr.open_dataset(written["data"])
    np.testing.assert_array_equal(back["tokens"].values, study.result["tokens"].values)
    assert list(back["continuation"].values) == ["generated", "copy-last", "truth"]
