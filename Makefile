# The two commands a newcomer needs: `make dashboard` and `make test`.
# Each creates .venv when missing and installs what it needs (torch==2.13.0 first:
# the CPU wheel; anything else resolves to a multi-GB CUDA build).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 8050
OUT    ?= reports-out

.PHONY: dashboard test bench report zoo evaluate browser-deps clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

dashboard: $(STAMP)
	$(BIN)/interp dashboard --port $(PORT)

test: $(STAMP) browser-deps
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# Debian's Chromium for the browser tests (never a browser download).
browser-deps:
	@tools/ensure-chromium

bench: $(STAMP)
	$(BIN)/python -m benchmarks

report: $(STAMP)
	$(BIN)/interp report --all --out $(OUT)

zoo: $(STAMP)
	$(BIN)/interp zoo train --all --weights-dir zoo/weights --force

evaluate: $(STAMP)
	$(BIN)/interp zoo evaluate --all

clean:
	rm -rf $(VENV) .pytest_cache $(OUT)
