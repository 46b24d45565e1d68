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
# # 09 · Logit lens: when does a layer already predict what the model predicts?
#
# **Question:** read each layer's residual stream through the model's final norm and output head. How
# far is that next-token distribution from the final one (KL(final ‖ layer), nats), and how often is its
# top-1 token the final top-1? Per layer and per predicted frame, beside a control: another clip's final
# prediction at the same position (what knowing only the position gives). One clip's predictions are
# decoded to pixels, layer by layer.
#
# **Appendix figure:** none in the appendix; it complements the probing curves over depth (A.4, Fig. 11).
#
# **Time on a laptop CPU:** about 15 s with the demo model's cache (`make demo`, 32 clips; measured on
# 2 cores).

# %% tags=["parameters"]
checkpoint = "demo"  # trained by `make demo`
dataset = "moving-digits-val"  # its cache: cache/<checkpoint>/<dataset>.zarr
clips = 32  # clips of the cache to run through the model
clip = 0  # which of them to decode layer by layer

# %%
from toto_lens import studies

study = studies.lens(checkpoint, dataset=dataset, clips=clips, clip=clip)
study.summary

# %%
study.figure

# %% [markdown]
# Top row: the clip's frames; below, each layer's top-1 prediction of every token (teacher-forced on the
# clip's earlier tokens), decoded by the checkpoint's tokenizer.

# %%
study.figures[-1]
