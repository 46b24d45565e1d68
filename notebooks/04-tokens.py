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
# # 04 · Tokens: what do the tokenizers see?
#
# **Question:** how do tokenizers differ in the statistics of the token sequences they produce, and what
# does a single token look like? Raster-order n-grams inside each frame are counted for several
# tokenizers (rank-frequency curves, distinct n-grams against V^n, entropy, dead codes); then every code
# of one tokenizer is decoded to its patch, and a clip is tokenized and decoded back.
#
# **Appendix figures:** Figs. 12 and 13 (2-gram and 3-gram distributions of dVAE and VQGAN tokens, A.9).
#
# **Time on a laptop CPU:** about 15 s for 10,000 frames and three tokenizers (measured on 2 cores), plus
# about 20 s for each tokenizer never fitted before (`make demo` fits these three).

# %% tags=["parameters"]
tokenizers = ["kmeans-512", "random-512", "random-32768"]  # names (fitted on first use) or folders
n = [1, 2, 3]  # n-gram lengths
frames = 10_000  # frames tokenized per tokenizer (the paper counts 10,000 images)
data = "image-digits"  # the frames: image-digits or moving-digits
tokenizer = "kmeans-512"  # the one whose codebook is decoded below (the demo model reads it)
clip_source = "moving-digits"  # the clip tokenized and decoded back

# %%
import numpy as np
import plotly.express as px

from toto_lens import studies
from toto_lens.data import open_source
from toto_lens.progress import tqdm_progress
from toto_lens.tokenizers import load_tokenizer

# %% [markdown]
# ## n-gram statistics

# %%
study = studies.ngrams(tokenizers, n=n, frames=frames, data=data, progress=tqdm_progress())
study.summary

# %%
for figure in study.figures:  # one rank-frequency plot per n, then the summary
    figure.show()

# %% [markdown]
# ## The codebook, decoded
#
# Each code decoded on its own: a frame made of that code alone, cropped to one patch.

# %%
tok = load_tokenizer(tokenizer)
rows, cols = tok.grid
codes = np.arange(tok.vocab_size)
uniform = np.broadcast_to(codes[:, None, None], (len(codes), rows, cols))  # frame c: code c everywhere
patches = tok.decode(uniform)[:, : tok.patch, : tok.patch]  # (code, patch, patch)
side = int(np.ceil(np.sqrt(len(codes))))
padded = np.pad(patches, ((0, side * side - len(codes)), (0, 1), (0, 1)), constant_values=np.nan)
mosaic = padded.reshape(side, side, tok.patch + 1, tok.patch + 1).transpose(0, 2, 1, 3)
px.imshow(
    mosaic.reshape(side * (tok.patch + 1), side * (tok.patch + 1)),
    color_continuous_scale="gray",
    title=f"{tok.name}: the {len(codes)} codes as {tok.patch}×{tok.patch} patches, in code order",
).update_xaxes(visible=False).update_yaxes(visible=False).update_coloraxes(showscale=False)

# %% [markdown]
# ## A clip, tokenized and decoded back
#
# The frames on the left, what the model reads of them on the right (drag the slider through the frames).

# %%
clip = open_source(clip_source, split="val", n_clips=1)[0]
decoded = tok.decode(tok.encode(clip.frames))
mse = float(np.mean((decoded - clip.frames) ** 2))
print(f"reconstruction MSE {mse:.5f} ({10 * np.log10(1 / mse):.1f} dB PSNR) on {clip.num_frames} frames")
fig = px.imshow(
    np.stack([clip.frames, decoded]),
    facet_col=0,
    animation_frame=1,
    color_continuous_scale="gray",
    zmin=0,
    zmax=1,
    labels={"animation_frame": "frame"},
    title=f"{clip_source} val clip 0: frames and their {tok.name} reconstruction",
)
for annotation, text in zip(fig.layout.annotations, ("frames", "decoded"), strict=True):
    annotation.text = text
fig
