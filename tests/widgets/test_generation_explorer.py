"""`generation_explorer`: the button samples with the sliders' values and redraws the clips."""

import numpy as np
from extract_helpers import make_checkpoint

from toto_lens import open_cache
from toto_lens.run import extract
from toto_lens.widgets import generation_explorer


def test_the_button_samples_with_the_controls_and_redraws():
    make_checkpoint("genwidget")
    extract("genwidget", clips=3, batch_size=3, acts=("pooled",))
    ex = generation_explorer("genwidget", clips=1)
    first = ex.study.result
    assert first.attrs["prompt_frames"] == 1 and "generated: PSNR" in ex.info.value
    drawn = ex.image.data[0].source
    assert drawn.startswith("data:image/png;base64,")
    ex.temperature.value, ex.prompt_frames.value = 0.0, 3
    assert ex.study.result is first, "moving a slider alone does not sample (it takes seconds)"
    ex.run.click()
    result = ex.study.result
    options = result.attrs["options"]
    assert (options["temperature"], options["prompt_frames"], options["clips"]) == (0.0, 3, 1)
    assert list(result["frame"].values)[0] == 3, "quality is measured on the frames after the 3 given"
    given = 1 + 3 * 64
    real = open_cache("genwidget")["tokens"].values[0, :given]
    np.testing.assert_array_equal(result["tokens"].values[0, :given], real)
    assert ex.image.data[0].source != drawn, "the figure shows the new sample"
