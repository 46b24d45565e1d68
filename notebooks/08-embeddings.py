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
# # 08 · Embeddings: what does each layer's representation of the clips look like?
#
# **Question:** embed each layer's activations (pooled over a clip, or one point per frame) in 2-D with
# UMAP and colour the points by a label of the clips (motion, digit, …). Two numbers say how far to
# believe the picture: trustworthiness (are 2-D neighbours neighbours in the full space?) beside the same
# score for column-shuffled features, and the label's leave-one-out kNN accuracy in 2-D beside shuffled
# labels (chance for these class sizes).
#
# **Appendix figure:** none in the appendix; it complements the probing curves over depth (A.4, Fig. 11).
#
# **Time on a laptop CPU:** about 35 s with the demo model's cache (512 clips, 5 layers; ~15 s of it is
# importing umap and compiling it on the first fit; measured on 2 cores).

# %% tags=["parameters"]
checkpoint = "demo"  # trained by `make demo`
dataset = "moving-digits-val"  # its cache: cache/<checkpoint>/<dataset>.zarr
label = "motion"  # the clip label that colours the points: motion, digit, kind
source = "pooled"  # pooled: a point per clip; frame: a point per clip and frame
max_points = 2048  # a random subset of at most this many points

# %%
from toto_lens import studies

study = studies.embed(checkpoint, dataset=dataset, label=label, source=source, max_points=max_points)
study.summary

# %%
study.figure

# %% [markdown]
# One layer at a time: the slider moves the points to another layer's embedding (all of them are
# computed above, so moving it is instant).

# %%
import ipywidgets as widgets
import plotly.graph_objects as go

from toto_lens.figures.embedding import PALETTE, label_names

result = study.result
names = label_names(result, label)
groups = sorted(set(names))
layers = [int(v) for v in result["layer"].values]
figure = go.FigureWidget(layout={"height": 520, "width": 620, "legend": {"title": label}})
for g, name in enumerate(groups):
    figure.add_scattergl(mode="markers", name=name, marker={"size": 5, "color": PALETTE[g % len(PALETTE)]})
slider = widgets.IntSlider(min=layers[0], max=layers[-1], value=layers[-1], description="layer")


def show_layer(layer):
    one = result.sel(layer=layer, method="nearest")  # a layer the cache skipped: the nearest one
    xy = one["embedding"].values
    with figure.batch_update():
        for trace, name in zip(figure.data, groups, strict=True):
            trace.x, trace.y = xy[names == name, 0], xy[names == name, 1]
        figure.layout.title = (
            f"layer {int(one.layer)}: trustworthiness {float(one['trustworthiness']):.2f}, "
            f"kNN accuracy {float(one['separation']):.0%} (shuffled labels {float(one['separation_control']):.0%})"
        )


slider.observe(lambda change: show_layer(change["new"]), names="value")
show_layer(slider.value)
widgets.VBox([slider, figure])
