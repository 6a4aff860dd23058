# The two commands a newcomer runs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# What `make test`, `make demo` and CI install: every version pinned, every file hashed.
LOCK := requirements/lock.txt
# Venvs cached outside the clone (CI starts from a fresh one), each named by its lock's
# digest and Python's version.
CACHE := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/ferryml
venv_key = $(shell $(PYTHON) -c "import hashlib, sys; print(sys.version_info[0], \
	sys.version_info[1], hashlib.sha256(open('$(1)', 'rb').read()).hexdigest()[:12], sep='-')")
# The core at the lowest versions pyproject.toml allows.
LOWEST := requirements/lowest.txt
LOW ?= $(CACHE)/venv-lowest-$(call venv_key,$(LOWEST))
# A fast core subset of the suite, run at those versions.
LOWEST_TESTS := tests/tracking/test_client.py tests/tracking/test_fluent.py \
	tests/store/test_filters.py tests/store/test_sql_store.py \
	tests/store/test_search_sql.py tests/data/test_validation.py tests/data/test_profile.py \
	tests/registry/test_registry.py tests/cli/test_cli.py tests/test_config.py \
	tests/test_config_file.py tests/automation/test_policy_file.py tests/monitoring/test_drift.py \
	tests/serving/test_server.py tests/test_dependencies.py
# The peers' clients the tests drive: the real mlflow client (tests/server/test_mlflow_client.py)
# and Triton's clients of the inference protocol (tests/serving/test_protocol_clients.py).
# `make test` builds them before the suite, so their install is not test time; a test builds
# a missing one itself.
MLFLOW_LOCK := requirements/mlflow.txt
MLFLOW_VENV ?= $(CACHE)/venv-mlflow-$(call venv_key,$(MLFLOW_LOCK))
CLIENTS_LOCK := requirements/clients.txt
CLIENTS_VENV ?= $(CACHE)/venv-clients-$(call venv_key,$(CLIENTS_LOCK))
# The suite spreads over the machine's cores, a test file per worker at a time (a file's
# tests share their servers).
PYTEST_WORKERS ?= auto
# The web UI's front-end packages (ui/package-lock.json): uPlot is copied into the package's
# static folder (shipped in the wheel, not in git); axe-core stays in ui/node_modules for
# the browser tests.
UI_VENDOR := src/ferryml/ui/static/vendor
PIP_VERSION := pip==26.3
PIP_TOOLS := pip-tools==7.6.2

.PHONY: demo test test-lowest install lint bench bench-server lock clean venv-mlflow \
	venv-clients topology

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(UI_VENDOR)/.built: ui/package-lock.json ui/package.json
	cd ui && npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(UI_VENDOR)
	cp ui/node_modules/uplot/dist/uPlot.esm.js ui/node_modules/uplot/dist/uPlot.min.css \
		ui/node_modules/uplot/LICENSE $(UI_VENDOR)/
	touch $@

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

$(CLIENTS_VENV)/.installed: | $(CLIENTS_LOCK)
	rm -rf $(CLIENTS_VENV)
	$(PYTHON) -m venv $(CLIENTS_VENV)
	$(CLIENTS_VENV)/bin/python -m pip install --quiet --require-hashes -r $(CLIENTS_LOCK)
	touch $@

venv-mlflow: $(MLFLOW_VENV)/.installed
venv-clients: $(CLIENTS_VENV)/.installed

install: $(VENV)/.installed $(UI_VENDOR)/.built

demo: install
	$(BIN)/python examples/demo.py

# The team's parts as processes of their own on 127.0.0.1 (examples/topology.py): PostgreSQL
# (a database of its own in FERRY_TOPOLOGY_POSTGRES's server), S3 (moto), a Dask scheduler and
# two workers, ferry server, two ferry serve replicas and ferry agent; the closed loop runs
# across them while parts are killed. A few minutes; Ctrl-C stops every part.
topology: install
	$(BIN)/python examples/topology.py

test: install test-lowest venv-mlflow venv-clients
	$(BIN)/ruff check src tests examples
	$(BIN)/mypy src
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile --durations=30

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
	rm -rf $(VENV) .venv-lock .ferry ui/node_modules $(UI_VENDOR)
