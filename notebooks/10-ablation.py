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
# # 10 · Head ablation: do the frame-induction heads make later frames cheap?
#
# **Question:** silence chosen attention heads (their output before the output projection set to 0, or
# to its mean over clips and positions) and measure the per-frame loss again. Does the later frames'
# advantage (first-frame loss / later-frames loss) shrink? The chosen heads' Δ later-frames loss is read
# against as many random other heads, several draws.
#
# **Appendix figure:** none in the appendix; it tests the suggestion of A.3 that induction heads explain
# why frames after the first are cheap.
#
# **Time on a laptop CPU:** about 10 s with the demo model's cache (`make demo`, 32 clips, 5 draws;
# measured on 2 cores).

# %% tags=["parameters"]
checkpoint = "demo"  # trained by `make demo`
dataset = "moving-digits-val"  # its cache: cache/<checkpoint>/<dataset>.zarr
heads = "top:frame_induction:2"  # top:<score>:<k>, or layer.head list such as "1.2,2.0"
mode = "zero"  # zero, or mean
clips = 32  # clips of the cache to run through the model
draws = 5  # draws of as many random heads, the control

# %%
from toto_lens import studies

study = studies.ablate(checkpoint, dataset=dataset, heads=heads, mode=mode, clips=clips, random_draws=draws)
study.summary

# %%
study.figure
