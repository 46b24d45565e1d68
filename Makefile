# toto-lens: `make setup` then `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU build by default; GPU users: make setup TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: setup test test-fast demo notebooks lint format bench clean

setup:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	@$(BIN)/toto-lens --version

test:
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast:
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

DEMO ?= cache/demo
# The main job on the bundled data: look at the clips and tokens, train the default model (toto-tiny,
# 600 steps), extract its activation cache, then the appendix's probing curves (Fig. 9: video tasks on
# moving digits, image classification on the image-digits cache), frame-wise loss redundancy (Fig. 10)
# and induction-head scores (A.3).
demo:
	$(BIN)/toto-lens data preview --n 8 --out $(DEMO)/clips.png
	$(BIN)/toto-lens ngrams --tokenizer kmeans-512 --tokenizer random-512 --tokenizer random-32768 --n 1 2 3 --out $(DEMO)/ngrams.html
	$(BIN)/toto-lens train --name demo --overwrite
	$(BIN)/toto-lens extract --ckpt demo --acts pooled,frame,token --overwrite
	$(BIN)/toto-lens probe --ckpt demo --task digit,motion,position,velocity --probe linear,attention --out $(DEMO)/probing.nc
	$(BIN)/toto-lens extract --ckpt demo --data image-digits --acts pooled,frame,token --token-clips 128 --overwrite
	$(BIN)/toto-lens probe --ckpt demo --dataset image-digits-val --task frame_digit --probe linear,attention --out $(DEMO)/probing-images.nc
	$(BIN)/toto-lens redundancy --ckpt demo --out $(DEMO)/redundancy.html
	$(BIN)/toto-lens induction --ckpt demo --out $(DEMO)/induction.html
	@echo "demo outputs in $(DEMO)/: clips.png, figures (.html) with their numbers (.nc) for ngrams, probing, probing-images, redundancy, induction; cache $(DEMO)/moving-digits-val.zarr"

# JupyterLab on the notebooks, one per question (README, "Notebooks"); they read what `make demo` makes.
notebooks:
	$(BIN)/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root,)

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format:
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench:
	for script in benchmarks/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
