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
# # 11 · Generation: what does the model draw when it continues a clip, or starts from nothing?
#
# **Question:** sample clips from the checkpoint with the KV cache (temperature, top-k, top-p, a seed),
# either from a start token alone ([1] a video, [3] a sequence of images) or continuing the first frames of
# real clips, decode them through the tokenizer, and measure them: PSNR and SSIM per frame against the true
# continuation, beside the copy-last-frame baseline and the truth itself; the n-gram divergence of the
# generated codes from real clips'; a Fréchet distance on the model's own features of real and generated
# frames.
#
# **Appendix figure:** Fig. 15 (generation from a video start token against an image start token), A.12.
#
# **Time on a laptop CPU:** about 30 s with the demo model (8 clips of 16 frames; measured on 2 cores).

# %% tags=["parameters"]
checkpoint = "demo"  # trained by `make demo`
dataset = "moving-digits-val"  # its cache gives the real clips (prompts and the truth)
clips = 8  # clips sampled
prompt_frames = 1  # real frames given; 0 = from the start token alone
temperature = 1.0  # 0 = greedy
start = "video"  # "video" ([1]) or "image" ([3]) when prompt_frames = 0
compare_clips = 2  # clips sampled from each start token in the comparison below
explore_clips = 2  # clips the explorer samples at each press

# %%
from toto_lens import studies, widgets

study = studies.generation(
    checkpoint,
    dataset=dataset,
    clips=clips,
    prompt_frames=prompt_frames,
    temperature=temperature,
    start=start,
)
study.summary

# %%
study.figure

# %%
study.figures[1]

# %% [markdown]
# The appendix's comparison: the same model from the video start token [1] and from the image start token
# [3], no frame given. A video model started as a video should draw frames that follow each other.

# %%
for token in ("video", "image"):
    from_start = studies.generation(
        checkpoint, dataset=dataset, clips=compare_clips, prompt_frames=0, start=token
    )
    print(f"[{token}]", from_start.summary.rows[0])
from_start.figure

# %% [markdown]
# Sample again at another temperature or prompt length: move the sliders, then press generate.

# %%
widgets.generation_explorer(checkpoint, dataset=dataset, clips=explore_clips)
