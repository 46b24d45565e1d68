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
# # 07 · Attribution: which earlier tokens does the prediction of a token rest on?
#
# **Question:** for a token of a later frame, how much of the evidence for log p(token | earlier tokens)
# sits on its own frame, on the previous frame (and there, on the same place), on older frames and on the
# start token? Integrated gradients (captum) on the token embedding, from a baseline of pad tokens; each
# share beside the share uniform mass over the earlier tokens would give, and the previous frame's same
# place beside its other places. The completeness gap says whether the attributions add up to the change
# of log p from the baseline to the clip.
#
# **Appendix figure:** none in the appendix; it asks where the redundancy of later frames (A.3, Fig. 10)
# comes from, token by token.
#
# **Time on a laptop CPU:** about 2-3 min with the demo model's cache (`make demo`, 8 random targets and
# the chosen one, 32 steps, doubled up to 128 where the completeness gap is over 1 %; 32 targets took 12 min
# on 2 cores shared with another job).

# %% tags=["parameters"]
checkpoint = "demo"  # trained by `make demo`
dataset = "moving-digits-val"  # its cache: cache/<checkpoint>/<dataset>.zarr
targets = 8  # random tokens of frames ≥ 1, one per clip of the first clips
n_steps = 32  # steps of the integrated-gradients integral
seed = 0  # which random tokens
clip = 0  # the chosen target below: its clip, frame, row and col
frame = 3
row = 4
col = 4

# %%
from toto_lens import studies

study = studies.attribute(checkpoint, dataset=dataset, targets=targets, n_steps=n_steps, seed=seed)
study.summary

# %% [markdown]
# Left: the share of the attribution per frame offset (and the start token), beside the share uniform
# mass would give. Right: the mean share of one token at each (Δrow, Δcol) from the target, in the
# target's own frame and the two before it; the cross marks the target's place.

# %%
study.figure

# %% [markdown]
# One chosen token: the same summaries for it alone.

# %%
one = studies.attribute(
    checkpoint, dataset=dataset, clip=clip, frame=frame, row=row, col=col, n_steps=n_steps
)
one.summary

# %%
one.figure
