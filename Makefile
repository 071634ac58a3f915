# The two set-up commands of the README: `make demo` and `make test`.
# Each creates or refreshes .venv itself (Python 3.11), so both work on a fresh Debian/Ubuntu machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test test-all lint system-deps bench-preprocessing clean venv

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "recstack needs Python 3.11 (found " + sys.version.split()[0] + "); set PYTHON=/path/to/python3.11")'
	@$(PYTHON) -m venv --help >/dev/null 2>&1 && $(PYTHON) -c 'import ensurepip' 2>/dev/null || \
		(echo "python3-venv is missing: installing it" && apt-get update -qq && apt-get install -y -qq python3-venv python3.11-venv)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/recstack demo

test: $(STAMP) system-deps
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

# Debian packages the tests use, installed when missing: redis-server (tests start their own on a free port),
# libb64-0d (perf_analyzer, taken from the tritonclient 2.51 wheel, links it) and chromium with its driver (the
# storefront's browser tests; Playwright drives it, so no browser is ever downloaded).
system-deps:
	@command -v redis-server >/dev/null || (echo "redis-server is missing: installing it" && \
		(apt-get install -y -qq redis-server || (apt-get update -qq && apt-get install -y -qq redis-server)))
	@ldconfig -p | grep -q libb64.so.0d || (echo "libb64-0d is missing: installing it" && \
		(apt-get install -y -qq libb64-0d || (apt-get update -qq && apt-get install -y -qq libb64-0d)))
	@command -v chromium >/dev/null || (echo "chromium is missing: installing it" && \
		(apt-get install -y -qq chromium chromium-driver || \
		 (apt-get update -qq && apt-get install -y -qq chromium chromium-driver)))

test-all: $(STAMP) system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The import contract (stages import only down the layers) is a test file, so it also runs in make test.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/hadolint docker/*.Dockerfile
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/recstack/test_import_layers.py

bench-preprocessing: $(STAMP)
	$(BIN)/recstack bench preprocessing

clean:
	rm -rf build $(VENV)
