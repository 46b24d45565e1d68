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
# # 12 · Scaling: one learning rate for every width, and loss against compute
#
# **Question:** under μP, is one learning rate best for every width, as the paper finds (2^-7 for widths
# 64 … 1536)? Every (width, learning rate) pair is trained for the same steps under μP and, as the
# control, under the standard parametrization, where the best rate usually moves down as the width
# grows. Then: how does validation loss fall with training compute C = 6·N·D across models, and what
# power law L = a·C^−α fits its compute-efficient frontier?
#
# **Appendix figure:** Fig. 11 (μP learning rate, A.8) and Fig. 14 (training loss curves of the variants).
#
# **Time on a laptop CPU:** the defaults train 24 runs of 50 steps (3 widths × 4 learning rates × 2
# parametrizations of the 4-layer toto-tiny): about 15 minutes on 2 cores, estimated from `make demo`'s
# 0.55 s a step of toto-tiny (the test's 8 runs of 2 steps of toto-debug take 30 s). Finished runs are
# read back, so running it again takes seconds; the compute plot reads the runs' logs in a second.

# %% tags=["parameters"]
widths = [32, 64, 128]  # model widths (depth and heads from `model`); μP base width: the smallest
lrs = [1e-3, 3e-3, 1e-2, 3e-2]  # the learning-rate grid
model = "toto-tiny"
steps = 50  # optimizer steps per run
batch_size = 8
eval_every = 10  # validate every N steps: the compute plot draws each run's evaluations
control = True  # also sweep the standard parametrization
name = "notebook-sweep"  # the runs lie in <cache>/sweeps/<name>-mup/ and <name>-standard/
tokenizer = "kmeans-512"
data = "moving-digits=0.8,image-digits=0.2"
train_clips = 1024
val_clips = 16  # clips per source at each evaluation
checkpoints = []  # trained checkpoints for the compute plot (e.g. ["demo"]); empty: the sweep's best runs

# %%
from toto_lens import studies
from toto_lens.progress import tqdm_progress
from toto_lens.studies.scaling import best_runs

sweep = studies.lr_sweep(
    widths, lrs, model=model, steps=steps, batch_size=batch_size, eval_every=eval_every, control=control,
    name=name, tokenizer=tokenizer, data=data, train_clips=train_clips, val_clips=val_clips,
    progress=tqdm_progress(),
)  # fmt: skip
sweep.summary

# %%
sweep.figure

# %% [markdown]
# ## Loss against compute
#
# Each model's validation evaluations, at C = 6·N·D (N: parameters without the token embedding and the
# output layer, D: tokens seen). Without named checkpoints, the μP sweep's best run of each width.

# %%
scaling = studies.scaling(checkpoints or best_runs(sweep.result, "mup"))
scaling.summary

# %%
scaling.figure
