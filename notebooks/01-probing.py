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
# # 01 · Probing: where in depth do the features sit?
#
# **Question:** which layer of the model holds the most linearly readable information about what a clip
# shows (the digit, its motion, where it is and how it moves), and how much of that comes from training
# rather than from the architecture? A probe is trained on each layer's activations and scored on
# held-out clips, for the trained checkpoint and for an untrained copy of it (same config, tokenizer and
# clips, fresh weights). With the snapshots a run kept (`--snapshot-every`), the same curves at each kept
# step show when in training they appear.
#
# **Appendix figure:** Fig. 9 (probing across layers, models and tasks; the paper finds the peak near
# 50 % of depth).
#
# **Time on a laptop CPU:** about 40 s with the demo model (`make demo`; measured on 2 cores), most of it
# extracting the untrained baseline's cache (512 clips); later runs reuse that cache and take about 15 s.

# %% tags=["parameters"]
checkpoint = "demo"  # trained by `make demo`
dataset = "moving-digits-val"  # its cache: cache/<checkpoint>/<dataset>.zarr
tasks = "digit,motion"  # also: position, velocity, frame_digit (on image-digits-val)
probes = "linear"  # "linear,attention" adds the attention probe (needs per-token activations)
seeds = 3  # train/val splits per curve: the band is their spread
layers = "all"  # or "0,2,4", "1:4"
baseline = None  # the untrained copy; None: "<checkpoint>-untrained", made here when missing
run = None  # a run trained with --snapshot-every, probed at each kept step; None: the checkpoint's own

# %%
import xarray as xr
from IPython.display import display

from toto_lens import extract, open_cache, studies
from toto_lens.checkpoints import init_checkpoint, list_checkpoints
from toto_lens.figures.probing import probing_figure
from toto_lens.progress import tqdm_progress
from toto_lens.train import list_snapshots
from toto_lens.widgets import probing_explorer

ds = open_cache(checkpoint, dataset)
baseline = baseline or f"{checkpoint}-untrained"
options = {"dataset": dataset, "tasks": tasks, "probes": probes, "seeds": seeds, "layers": layers}

# %% [markdown]
# ## The trained model

# %%
trained = studies.probing(checkpoint, **options, progress=tqdm_progress())
trained.summary

# %%
trained.figure

# %% [markdown]
# ## Its untrained baseline
#
# `init_checkpoint(like=…)` copies the checkpoint's config, tokenizer and training data with fresh
# weights; extracting it over the same clips gives the curve that training has to beat.

# %%
if baseline not in list_checkpoints():
    init_checkpoint(baseline, like=checkpoint)
source, split = dataset.rsplit("-", 1)
extract(
    baseline,
    data=source,
    split=split,
    clips=ds.sizes["clip"],
    acts=("pooled", "frame", "token") if "attention" in probes else ("pooled", "frame"),
    progress=tqdm_progress(),
)
untrained = studies.probing(baseline, **options, progress=tqdm_progress())
untrained.summary

# %% [markdown]
# ## Side by side
#
# Both models' curves in the same panels: the trained model solid, its untrained copy dashed (what
# `studies.probing([checkpoint, baseline], …)` and `toto-lens probe --ckpt A --ckpt B` draw).

# %%
both = xr.concat(
    [trained.result, untrained.result],
    dim=xr.Variable("checkpoint", [checkpoint, baseline]),
    coords="different",
    compat="equals",
    combine_attrs="drop_conflicts",
)
probing_figure(both, title=f"Layer probing: {checkpoint} against its untrained copy (cf. Toto Fig. 9)")

# %% [markdown]
# ## Over training
#
# A run trained with `toto-lens train --snapshot-every N` kept its weights at step 0, N, 2N … as
# checkpoints `NAME-stepN`. Each is extracted over the same clips (a cache already there is reused) and
# probed alike; the curves go from pale (step 0, an untrained control of its own) to full (the last).

# %%
snapshots = list_snapshots(run or checkpoint)
if not snapshots:
    print(f"{run or checkpoint} kept no snapshots; train a run with `--snapshot-every 100` and set `run`")
else:
    for _, folder in snapshots:
        extract(folder.name, data=source, split=split, clips=ds.sizes["clip"], acts=("pooled", "frame"))
    over = studies.probing(
        [folder.name for _, folder in snapshots], **{**options, "probes": "linear"}, progress=tqdm_progress()
    )
    display(over.summary)
    display(over.figure)

# %% [markdown]
# ## Explore
#
# Pick a task, a probe and a layer: the explorer shows the curve and what the probe at that layer reads.

# %%
explorer = probing_explorer(trained, cache=ds)
explorer.widget
