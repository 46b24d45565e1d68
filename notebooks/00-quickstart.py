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
# # 00 · Quickstart: a checkpoint, its activation cache, a first plot
#
# **Question:** how do I get from a Toto checkpoint to the numbers that every other notebook reads?
# Pick a checkpoint (or make an untrained one with `init_checkpoint`), run it once over clips
# (`toto_lens.extract`) to write its per-token losses and per-layer activations into a zarr cache, open
# the cache (`open_cache`) and plot the loss of every token.
#
# **Appendix figure:** none of its own; the plot at the end is the raw form of Fig. 10 (loss over the
# tokens of a clip), which `02-redundancy` takes apart.
#
# **Time on a laptop CPU:** about 12 s when `make demo` has run (its cache is reused), about a minute more
# when the cache must be extracted first (512 clips of the demo model; measured on 2 cores).

# %% tags=["parameters"]
checkpoint = "demo"  # a name under cache/checkpoints/ (`make demo` trains `demo`) or a checkpoint folder
dataset = "moving-digits-val"  # <source>-<split>: the cache cache/<checkpoint>/<dataset>.zarr
clips = 512  # clips to extract when that cache does not exist yet

# %%
import plotly.express as px

from toto_lens import TotoLensError, extract, list_checkpoints, load_checkpoint, open_cache
from toto_lens.checkpoints import describe, init_checkpoint
from toto_lens.paths import cache_root
from toto_lens.store import list_stores

print("cache root:", cache_root())
print("checkpoints:", list_checkpoints())

# %% [markdown]
# ## A checkpoint
#
# A name resolves under `cache/checkpoints/<name>/`. When nothing is trained yet, an untrained `toto-tiny`
# stands in (`make demo` trains the real one); it records the tokenizer the demo trains with (k-means,
# 512 codes) and the trainer's data, so extraction needs nothing more.

# %%
try:
    ckpt = load_checkpoint(checkpoint)
except TotoLensError as e:
    print(f"{e}\n→ an untrained toto-tiny stands in")
    checkpoint = "tiny-untrained"
    ckpt = load_checkpoint(
        init_checkpoint(checkpoint, model="toto-tiny", tokenizer="kmeans-512", overwrite=True)
    )
info = describe(ckpt)
{k: info[k] for k in ("name", "path", "params", "n_layers", "vocab_size", "tokenizer_summary")}

# %% [markdown]
# ## Its activation cache
#
# `extract` runs the checkpoint once over the clips and writes tokens, per-token losses and the residual
# stream of every layer (mean per clip, per frame and per token). A store that exists is reused; an
# unfinished one is continued.

# %%
source, split = dataset.rsplit("-", 1)
if dataset not in list_stores(ckpt.name):
    result = extract(
        ckpt.path,
        data=source,
        split=split,
        clips=clips,
        acts=("pooled", "frame", "token"),
    )
    print(f"extracted {result.clips} clips in {result.seconds:.1f} s")
ds = open_cache(ckpt.name, dataset)
ds

# %% [markdown]
# ## A first plot: the loss of every token
#
# Mean over clips of −log p(token | earlier tokens), coloured by the frame the token belongs to. On a
# trained model the first frame costs far more than the later ones: they repeat it.

# %%
mean_loss = ds["loss"].mean("clip").compute()
fig = px.scatter(
    x=mean_loss["position"], y=mean_loss, color=mean_loss["pos_frame"].astype(str),
    labels={"x": "position", "y": "mean loss (nats)", "color": "frame"},
    title=f"{ckpt.name}: loss per token over {ds.sizes['clip']} clips of {dataset}",
)  # fmt: skip
fig.update_traces(marker={"size": 3})

# %% [markdown]
# ## Where the files are
#
# Everything lives under the cache root (`TOTO_LENS_CACHE`, by default `cache/`): the checkpoint
# folder, and one zarr store per (checkpoint, dataset), readable without toto-lens through
# `xarray.open_zarr(path, consolidated=False)`.

# %%
print("checkpoint:", ckpt.path)
for f in sorted(ckpt.path.iterdir()):
    print(f"  {f.name:24s} {f.stat().st_size / 1e6:8.2f} MB")
store = ds.encoding["source"]
print("cache:", store)
print("  variables:", ", ".join(ds.data_vars))
