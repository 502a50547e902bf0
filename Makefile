# Set-up and the two entry points the README names: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO   ?= demo-out

.PHONY: setup demo test bench learn clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch and torchvision as a matching pair first (a build this machine keeps on disk; an unpinned install would
# download gigabytes). Override TORCH_PAIR on a machine that has its own.
TORCH_PAIR ?= torch==2.14.1 torchvision==0.29.1
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(TORCH_PAIR)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

COCOA_DEMO := amodaldata/data/cocoa

# The main job on the built-in data: real COCOA annotations -> targets, shards, a picture.
demo: setup
	$(BIN)/amodaldata convert cocoa $(COCOA_DEMO)/COCOA_demo.json --to semdist --out $(DEMO)/semdist --overwrite
	$(BIN)/amodaldata convert cocoa $(COCOA_DEMO)/COCOA_demo.json --to layered --layers 3 --out $(DEMO)/layered --overwrite
	$(BIN)/amodaldata convert cocoa $(COCOA_DEMO)/COCOA_demo.json --images $(COCOA_DEMO) --to parquet --out $(DEMO)/shards --overwrite
	$(BIN)/amodaldata show $(DEMO)/shards --from parquet --image-id 6608 --out $(DEMO)/scene-6608.png
	$(BIN)/amodaldata stats cocoa $(COCOA_DEMO)/COCOA_demo.json --json $(DEMO)/stats.json --no-progress
	$(BIN)/amodaldata gen shapes --n 20 --scenes-per-shard 10 --workers 1 --out $(DEMO)/shapes --no-progress
	$(BIN)/amodaldata show $(DEMO)/shapes --from parquet --image-id 0 --out $(DEMO)/shapes-0.png
	$(BIN)/amodaldata eval oracle $(DEMO)/shapes --layers 1-3
	@echo "demo outputs in $(DEMO)/"

test: setup
	$(BIN)/python -m pytest -q -n 2 tests

# Speed scripts (minutes); bench/learn.py trains every model for half an hour each: `make learn`.
bench: setup
	for b in bench/*.py; do [ $$b = bench/learn.py ] || $(BIN)/python $$b || exit 1; done

learn: setup
	$(BIN)/python bench/learn.py

clean:
	rm -rf $(VENV) $(DEMO) build *.egg-info
