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
# # 06 · Tracking: do a layer's token features carry objects through a clip?
#
# **Question:** give the first frame's object masks, propagate them through the clip by the similarity of
# each layer's token features (label propagation as in STC and DINO: top-k sources among the first frame
# and the last few predicted frames, a spatial neighbourhood), and score the predicted masks with the
# DAVIS 2017 J&F. Three rows put each layer's number in context, on the same clips: `copy-first` (the first
# mask on every frame: what no motion scores), `pixels` (raw pixel patches as features: no learning at all)
# and `token-oracle` (every frame's true labels on the token grid: the most any token-level tracker scores).
#
# **Appendix figure:** Fig. 7 (predicted masks through a video) and Table 14 (J&F per model on DAVIS).
#
# **Time on a laptop CPU:** about 25 s with the demo model's cache (64 clips, 5 layers; measured on 2 cores).

# %% tags=["parameters"]
checkpoint = "demo"  # trained by `make demo`
dataset = "moving-digits-val"  # its cache: cache/<checkpoint>/<dataset>.zarr (with per-token activations)
clips = 64  # the first complete clips with per-token activations
topk, context, radius, temperature = 5, 7, 2, 0.1  # DINO's settings, the radius scaled to an 8×8 grid
show = 8  # clips whose predicted masks are kept for the pictures below

# %%
from toto_lens import studies, widgets

study = studies.track(
    checkpoint, dataset=dataset, clips=clips, topk=topk, context=context, radius=radius,
    temperature=temperature, show=show,
)  # fmt: skip
study.summary

# %% [markdown]
# Left: J&F (and its two halves) per layer, the baselines as lines. Right: how J&F falls through the clip
# for the best layer and the baselines (Decay in the table above).

# %%
study.figure

# %% [markdown]
# The Fig. 7 analogue: for a few clips, the truth, then the best layer's masks and the baselines'.

# %%
study.figures[1]

# %% [markdown]
# One clip and one predictor at a time, with that clip's scores per object.

# %%
widgets.tracking_explorer(study)
