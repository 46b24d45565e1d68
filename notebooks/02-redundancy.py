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
# # 02 · Redundancy: why do later frames cost so little loss?
#
# **Question:** how much of a video's loss sits in its first frame, and how much of the later frames'
# low loss could a trivial predictor get by copying the previous frame? The model's mean loss per frame
# and per position is set beside three predictors fitted on half of the clips and scored on the other
# half: copy (the token at the same row and column one frame earlier), unigram and bigram.
#
# **Appendix figure:** Fig. 10 (average validation loss over the tokens of a clip, A.3).
#
# **Time on a laptop CPU:** about 10 s with the demo model's cache (`make demo`, 512 clips; measured on
# 2 cores).

# %% tags=["parameters"]
checkpoint = "demo"  # trained by `make demo`
dataset = "moving-digits-val"  # its cache: cache/<checkpoint>/<dataset>.zarr
kind = "video"  # "video", "images" (image sequences) or None (every clip)
fit = "half"  # baselines fitted on half the clips and scored on the other half, or "all" (in-sample)

# %%
from toto_lens import open_cache, studies
from toto_lens.widgets import loss_explorer

ds = open_cache(checkpoint, dataset)

# %%
study = studies.redundancy(checkpoint, dataset=dataset, kind=kind, fit=fit)
study.summary

# %%
study.figure

# %% [markdown]
# ## Explore
#
# The loss of single clips, token by token: move the slider to step through the clips and frames.

# %%
explorer = loss_explorer(ds, kind=kind)
explorer.widget
