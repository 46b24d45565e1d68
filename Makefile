# toto-lens: `make setup` then `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU build by default; GPU users: make setup TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=
# Test workers (pytest-xdist): each test file runs whole on one of two workers (--dist loadfile), what CI
# runs: 20 min on 2 cores where one process takes over 30; `make test TEST_WORKERS=0` runs one process.
TEST_WORKERS ?= 2

.PHONY: setup test test-fast demo figures browser notebooks lint format bench clean

setup:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	@$(BIN)/toto-lens --version

# The JupyterLab test and the report's PNGs drive Chromium: `browser` installs it first when missing.
test: browser
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=30 $(PYTEST_ARGS)

test-fast:
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow" $(PYTEST_ARGS)

DEMO ?= cache/demo
# The demo's checkpoints are named after its folder (cache/demo → demo, demo-untrained), so that
# `make demo DEMO=/tmp/demo2` trains demo2 and leaves the checkpoint `demo` alone. Checkpoints live under
# the cache root ($TOTO_LENS_CACHE, else cache/), activation caches under <root>/<checkpoint>/.
DEMO_CKPT ?= $(notdir $(abspath $(DEMO)))
DEMO_ROOT := $(or $(TOTO_LENS_CACHE),cache)
# The main job on the bundled data: look at the clips and tokens, train the default model (toto-tiny,
# 600 steps) and make its untrained copy (the baseline every curve needs), extract both models'
# activation caches, then the appendix's probing curves (Fig. 9: video tasks on moving digits, image
# classification on the image-digits cache), frame-wise loss redundancy (Fig. 10) and induction-head
# scores (A.3), trained beside untrained.
demo:
	$(BIN)/toto-lens data preview --n 8 --out $(DEMO)/clips.png
	$(BIN)/toto-lens ngrams --tokenizer kmeans-512 --tokenizer random-512 --tokenizer random-32768 --n 1 2 3 --out $(DEMO)/ngrams.html
	$(BIN)/toto-lens train --name $(DEMO_CKPT) --overwrite
	$(BIN)/toto-lens init --like $(DEMO_CKPT) --name $(DEMO_CKPT)-untrained --overwrite
	for ckpt in $(DEMO_CKPT) $(DEMO_CKPT)-untrained; do \
	  $(BIN)/toto-lens extract --ckpt $$ckpt --acts pooled,frame,token --overwrite && \
	  $(BIN)/toto-lens extract --ckpt $$ckpt --data image-digits --acts pooled,frame,token --token-clips 128 --overwrite || exit 1; \
	done
	$(BIN)/toto-lens probe --ckpt $(DEMO_CKPT) --ckpt $(DEMO_CKPT)-untrained --task digit,motion,position,velocity --probe linear,attention --out $(DEMO)/probing.nc
	$(BIN)/toto-lens probe --ckpt $(DEMO_CKPT) --ckpt $(DEMO_CKPT)-untrained --dataset image-digits-val --task frame_digit --probe linear,attention --out $(DEMO)/probing-images.nc
	$(BIN)/toto-lens redundancy --ckpt $(DEMO_CKPT) --out $(DEMO)/redundancy.html
	$(BIN)/toto-lens induction --ckpt $(DEMO_CKPT)-untrained --ckpt $(DEMO_CKPT) --out $(DEMO)/induction.html
	@echo "demo outputs: $(DEMO)/clips.png; figures (.html, open in a browser) with their numbers (.nc): $(DEMO)/ngrams.html, $(DEMO)/probing.html, $(DEMO)/probing-images.html, $(DEMO)/redundancy.html, $(DEMO)/induction.html; checkpoints $(DEMO_ROOT)/checkpoints/$(DEMO_CKPT) and $(DEMO_ROOT)/checkpoints/$(DEMO_CKPT)-untrained; activation caches $(DEMO_ROOT)/$(DEMO_CKPT)/ and $(DEMO_ROOT)/$(DEMO_CKPT)-untrained/ (moving-digits-val.zarr, image-digits-val.zarr)"

FAMILY ?= cpu
REPORT ?= report
# The appendix regenerated (README, "The appendix report"): trains or reuses the model family, runs every
# study, writes $(REPORT)/index.html with PNGs beside it (drawn by the system Chromium, installed when
# missing). `make figures FAMILY=smoke` takes minutes; the default `cpu` family under an hour on 2 cores.
figures: browser
	$(BIN)/toto-lens figures --family $(FAMILY) --out $(REPORT)

# Debian's chromium and chromedriver: the report's PNGs (kaleido) and the JupyterLab browser test. The
# package lists are refreshed only when the install fails with the ones at hand.
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver || \
	  { $$sudo apt-get update -q && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; }; \
	fi

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
