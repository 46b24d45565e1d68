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
# # 05 · Attention maps: where does a token look, one frame back or in its own frame?
#
# **Question:** for a chosen clip, layer, head and query token, which earlier tokens does the query
# attend to, drawn over the decoded frames, and how much goes to the start token (the sink)? And over
# every (layer, head): how far back in frames, rows and columns a head looks, how much of its mass stays
# in the query's own frame, and the frame-to-frame mass matrices. Heads that read the same place one
# frame earlier are the copy mechanism behind the low loss of later frames.
#
# **Appendix figure:** A.3 (induction heads and the redundancy of later frames), with Fig. 10 beside it.
#
# **Time on a laptop CPU:** about 15 s with the demo model (`make demo`); patterns the cache does not
# hold (`extract --attn frame,pattern` stores a few clips') are computed for the one clip shown.

# %% tags=["parameters"]
checkpoint = "demo"  # trained by `make demo`
dataset = "moving-digits-val"  # its cache: cache/<checkpoint>/<dataset>.zarr
clip = 0  # the clip to look at
layer = None  # numbered as in the cache, block 0 is layer 1; None: the middle block
head = 0
query = None  # [frame, row, col] of the query token; None: the centre of the last frame

# %%
from toto_lens import open_cache, studies
from toto_lens.widgets import attention_explorer

ds = open_cache(checkpoint, dataset)
study = studies.attention(checkpoint, dataset=dataset, clip=clip, layer=layer, head=head, query=query)
study.summary

# %%
study.figure

# %% [markdown]
# Every head as one point: how far back it looks (frames) against its start-token mass, and how much of
# its weight stays in the query's own frame against earlier frames.

# %%
study.figures[1]

# %%
study.figures[2]

# %% [markdown]
# ## Explore
#
# Move the sliders, or click a token on any frame to make it the query; the map updates in place.

# %%
explorer = attention_explorer(ds, clip=clip, layer=layer, head=head, query=query)
explorer.widget
