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
# # 03 · Induction heads: which heads copy from the previous frame?
#
# **Question:** are there attention heads that explain the redundancy of `02-redundancy`, heads that look
# up where the next token sat one frame earlier and copy it? Each head is scored on random token
# sequences played twice (prefix matching, the classic induction test) and on real clips (previous
# frame, frame induction, previous row, a clip played twice). Given several checkpoints of one run, in
# training order, the scores become curves of when the heads emerge.
#
# **Appendix figure:** none; it tests the explanation A.3 offers for Fig. 10 ("this also could be
# attributed by emergence of induction heads").
#
# **Time on a laptop CPU:** about 15 s for the demo model (64 sequences; measured on 2 cores), and a few
# seconds more for each further checkpoint.

# %% tags=["parameters"]
checkpoint = "demo"  # trained by `make demo`
dataset = "moving-digits-val"  # the cache whose clips give the video scores
checkpoints = []  # several checkpoints of one run, in training order (empty: `checkpoint` alone)
n = None  # length of the repeated random tokens (None: 1.5 frames, away from the previous-frame offset)
batch = 8
threshold = 0.4  # a head above this score counts

# %%
from toto_lens import open_cache, studies
from toto_lens.progress import tqdm_progress
from toto_lens.widgets import head_explorer

ds = open_cache(checkpoint, dataset)

# %%
study = studies.induction(
    checkpoints or checkpoint,
    n=n,
    batch=batch,
    dataset=dataset,
    threshold=threshold,
    progress=tqdm_progress(),
)
study.summary

# %%
for figure in study.figures:  # the heads of each score; with several checkpoints, their emergence
    figure.show()

# %% [markdown]
# ## Explore
#
# Pick a score and a head: the explorer shows where that head attends on a clip of the cache.

# %%
explorer = head_explorer(study, cache=ds)
explorer.widget
