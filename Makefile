# toto-lens: `make setup` then `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU build by default; GPU users: make setup TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: setup test test-fast demo lint format bench clean

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
# What exists on the bundled data so far: clips, tokenizers, n-gram statistics, an untrained model.
demo:
	$(BIN)/toto-lens data preview --n 8 --out $(DEMO)/clips.png
	$(BIN)/toto-lens data preview --n 8 --out $(DEMO)/clips.gif
	$(BIN)/toto-lens ngrams --tokenizer kmeans-512 --tokenizer random-512 --tokenizer random-32768 --n 1 2 3 --out $(DEMO)/ngrams.html
	$(BIN)/toto-lens init --model toto-tiny --name demo-untrained --overwrite
	$(BIN)/toto-lens info --ckpt demo-untrained
	@echo "demo outputs in $(DEMO)/ (training arrives with the trainer)"

lint:
	$(BIN)/ruff check toto_lens tests benchmarks
	$(BIN)/ruff format --check toto_lens tests benchmarks

format:
	$(BIN)/ruff check --fix toto_lens tests benchmarks
	$(BIN)/ruff format toto_lens tests benchmarks

bench:
	for script in benchmarks/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
