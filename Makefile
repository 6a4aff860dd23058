# The two commands a newcomer runs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# What `make test`, `make demo` and CI install: every version pinned, every file hashed.
LOCK := requirements/lock.txt
# The core at the lowest versions pyproject.toml allows, in a second venv cached outside the
# clone (CI starts from a fresh one), named by the lock's digest and Python's version.
LOWEST := requirements/lowest.txt
LOWEST_KEY := $(shell $(PYTHON) -c "import hashlib, sys; print(sys.version_info[0], \
	sys.version_info[1], hashlib.sha256(open('$(LOWEST)', 'rb').read()).hexdigest()[:12], sep='-')")
LOW ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/ferryml/venv-lowest-$(LOWEST_KEY)
# A fast core subset of the suite, run at those versions.
LOWEST_TESTS := tests/tracking/test_client.py tests/tracking/test_fluent.py \
	tests/tracking/test_search_parser.py tests/store/test_sql_store.py \
	tests/store/test_search_sql.py tests/data/test_validation.py tests/data/test_profile.py \
	tests/registry/test_registry.py tests/cli/test_cli.py tests/test_config.py \
	tests/test_config_file.py tests/automation/test_policy_file.py tests/monitoring/test_drift.py \
	tests/serving/test_server.py tests/test_dependencies.py
# The real mlflow client that tests/server/test_mlflow_client.py drives, in a third venv
# cached the same way (the tests build it on first use when it is missing).
MLFLOW_LOCK := requirements/mlflow.txt
MLFLOW_KEY := $(shell $(PYTHON) -c "import hashlib, sys; print(sys.version_info[0], \
	sys.version_info[1], hashlib.sha256(open('$(MLFLOW_LOCK)', 'rb').read()).hexdigest()[:12], sep='-')")
MLFLOW_VENV ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/ferryml/venv-mlflow-$(MLFLOW_KEY)
PIP_VERSION := pip==26.3
PIP_TOOLS := pip-tools==7.6.2

.PHONY: demo test test-lowest install lint bench bench-server lock clean venv-mlflow

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(LOCK) pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade "$(PIP_VERSION)"
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

# The lock is installed once; ferryml (editable) again by each run, pointing at its clone.
$(LOW)/.installed: | $(LOWEST)
	rm -rf $(LOW)
	$(PYTHON) -m venv $(LOW)
	$(LOW)/bin/python -m pip install --quiet --upgrade "$(PIP_VERSION)"
	$(LOW)/bin/python -m pip install --quiet --require-hashes -r $(LOWEST)
	touch $@

$(MLFLOW_VENV)/.installed: | $(MLFLOW_LOCK)
	rm -rf $(MLFLOW_VENV)
	$(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/python -m pip install --quiet --upgrade "$(PIP_VERSION)"
	$(MLFLOW_VENV)/bin/python -m pip install --quiet --require-hashes -r $(MLFLOW_LOCK)
	touch $@

venv-mlflow: $(MLFLOW_VENV)/.installed

install: $(VENV)/.installed

demo: install
	$(BIN)/python examples/demo.py

test: install test-lowest
	$(BIN)/ruff check src tests examples
	$(BIN)/mypy src
	$(BIN)/python -m pytest

# Tests that need an extra the lowest venv leaves out skip themselves.
test-lowest: $(LOW)/.installed
	$(LOW)/bin/python -m pip install --quiet --no-deps -e .
	$(LOW)/bin/python -m pytest -q -p no:cacheprovider -k "not s3" $(LOWEST_TESTS)

lint: install
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/mypy src

bench: install
	$(BIN)/python benchmarks/tracking.py

# ferry server against mlflow server over HTTP; moves 1 GiB each way, about 10 minutes.
bench-server: install
	$(BIN)/python benchmarks/server.py

# After changing a dependency in pyproject.toml or requirements/lowest.in: pin again (with
# pip-tools, in a venv of its own; it needs the network). Pins that still fit are kept;
# `make lock UPGRADE=--upgrade` moves everything to the newest (slow: many minutes).
LOCK_EXTRAS := postgres s3 dask xgboost lightgbm onnx pytorch shap plot river grpc test
COMPILE = CUSTOM_COMPILE_COMMAND="make lock" .venv-lock/bin/pip-compile --quiet \
	--generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links
lock:
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet "$(PIP_VERSION)" "$(PIP_TOOLS)"
	$(COMPILE) $(UPGRADE) $(foreach e,$(LOCK_EXTRAS),--extra $(e)) -o $(LOCK) pyproject.toml
	$(COMPILE) $(UPGRADE) -o $(LOWEST) requirements/lowest.in
	$(COMPILE) $(UPGRADE) -o requirements/clients.txt requirements/clients.in
	$(COMPILE) $(UPGRADE) -o $(MLFLOW_LOCK) requirements/mlflow.in

clean:  # the cached lowest-versions venv stays; its name changes with the lock
	rm -rf $(VENV) .venv-lock .ferry
