# The two commands a newcomer runs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade "pip==26.3"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/python examples/demo.py

test: install
	$(BIN)/ruff check src tests examples
	$(BIN)/mypy src
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/mypy src

bench: install
	$(BIN)/python benchmarks/tracking.py

clean:
	rm -rf $(VENV) .ferry
