# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 13 · Your own data: a folder of videos or images, tokenized once
#
# **Question:** do my clips look right to the model, and what does it read of them? A folder of videos
# (`video-folder:PATH`) or of images in class folders (`image-folder:PATH`) becomes clips with the
# folders as labels; browse them, fit a tokenizer on them (colour stays colour), look at what it keeps of
# a clip, and write the clips as token shards that training and extraction read without decoding again
# (`--data tokens:PATH`).
#
# **Appendix figures:** none; this is the step behind all of them. The paper's pre-training mixes
# ImageNet, Kinetics-600, Ego4D and HowTo100M (§3, Table 2) through one tokenizer; here a user's own
# folders take that step.
#
# **Time on a laptop CPU:** about 15 s on the demo folder written below (measured on 2 cores); a
# tokenizer fit grows with the clips it is fitted on.

# %% tags=["parameters"]
data = None  # your source, e.g. "video-folder:/data/clips?frames=16&stride=4"; None writes a demo folder
split = "train"  # train, val or test (split folders, or a hash of each file's path)
clips = 12  # clips browsed and fitted on
vocab = 64  # codes of the tokenizer fitted on the clips
shards = "my-shards"  # folder the token shards are written to

# %%
from pathlib import Path

import ipywidgets as widgets
import numpy as np
import plotly.express as px
from IPython.display import display

from toto_lens.data import open_source
from toto_lens.data.sources.tokens import write_token_shards
from toto_lens.figures.clips import preview_figure
from toto_lens.tokenizers import load_tokenizer
from toto_lens.tokenizers.named import fit_and_save

# %% [markdown]
# ## The clips
#
# With `data = None`, a demo folder is written first: bundled moving-digits clips saved as mp4 videos,
# one folder per motion class, each digit tinted in its own colour.

# %%
if data is None:
    import imageio.v3 as iio

    from toto_lens.data import MOTIONS, MovingDigits

    folder = Path("my-videos")
    demo = MovingDigits("val", n_clips=3 * clips, seed=0)
    for i in range(len(demo)):
        clip = demo[i]
        tint = np.array([[1.0, 0.4, 0.2], [0.3, 0.8, 1.0], [1.0, 0.9, 0.3]])[clip.digit % 3]
        rgb = (clip.frames[..., None] * tint * 255).astype(np.uint8)  # (F, H, W, 3)
        (folder / MOTIONS[clip.motion]).mkdir(parents=True, exist_ok=True)
        iio.imwrite(
            folder / MOTIONS[clip.motion] / f"clip{i:03d}.mp4", rgb, fps=12, codec="libx264", plugin="pyav"
        )
    data = f"video-folder:{folder}?frames=8&stride=2"
source = open_source(data, split=split, n_clips=clips)
print(f"{source.name}: {len(source)} clips of the {split} split")
print("labels:", ", ".join(f"{s.name} ({len(s.flag_meanings)} classes)" if s.flag_meanings else s.name
                           for s in source.label_spec) or "none")  # fmt: skip

# %% [markdown]
# Drag the slider through the clips: each shows its frames, its labels and the file it came from.

# %%
slider = widgets.IntSlider(0, 0, len(source) - 1, description="clip", continuous_update=False)
view = widgets.Output()


def show(change=None):
    with view:
        view.clear_output(wait=True)
        preview_figure([source[slider.value]], zoom=3).show()


slider.observe(show, "value")
show()
display(widgets.VBox([slider, view]))

# %% [markdown]
# ## A tokenizer fitted on them
#
# k-means over their patches (`toto-lens tokenizer fit --data …`): colour clips give a colour codebook.
# Its reconstruction error is measured on the source's validation clips.

# %%
report = fit_and_save("kmeans", vocab, "my-data-tokenizer", data=data, clips=clips, overwrite=True)
print(f"{report['path']}: MSE {report['mse']:.5f} ({report['psnr_db']:.1f} dB), "
      f"codebook usage {report['codebook_usage']:.0%}")  # fmt: skip
tok = load_tokenizer(report["path"])

# %% [markdown]
# One clip and what the model reads of it: the frames on the left, decoded from their tokens on the
# right (drag through the frames).

# %%
clip = source[0]
decoded = tok.decode(tok.encode(clip.frames))
pair = np.concatenate([clip.frames, decoded], axis=2)  # side by side: (F, H, 2W[, C])
fig = px.imshow(
    (pair * 255).astype(np.uint8) if pair.ndim == 4 else pair,
    animation_frame=0,
    binary_string=pair.ndim == 4,
    color_continuous_scale="gray",
    labels={"animation_frame": "frame"},
    title=f"{source.name} clip 0: frames (left) and their {tok.vocab_size}-code reconstruction (right)",
)
fig

# %% [markdown]
# ## Token shards: tokenized once, read without decoding
#
# `toto-lens data tokenize` does the same; then `--data tokens:my-shards` trains and extracts from them.

# %%
folder = write_token_shards(source, tok, shards, overwrite=True)
tokens = open_source(f"tokens:{shards}", split=split)
same = all(np.array_equal(tokens[i].codes, tok.encode(source[i].frames)) for i in range(len(tokens)))
size = sum(p.stat().st_size for p in folder.glob("codes-*.bin"))
print(f"{folder}: {len(tokens)} clips, {size:,} bytes of codes; the same codes as tokenizing again: {same}")
