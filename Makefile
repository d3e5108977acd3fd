# The one entry point: `make run` starts the service, `make test` runs every check.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: run test install system-deps lint typecheck unit integration e2e screenshots bench clean

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || bash scripts/system-deps.sh venv
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/prometora-webhooks serve $(ARGS)

# PostgreSQL server binaries for the test suite (installed with apt-get when missing).
system-deps:
	@bash scripts/system-deps.sh

lint: install
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

typecheck: install
	$(BIN)/mypy

test: install system-deps lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

unit: install
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

integration: install system-deps
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

# The dashboard in headless Chromium (Debian's, driven by Playwright).
e2e: install system-deps
	$(BIN)/pytest tests/e2e $(PYTEST_ARGS)

# Screenshots of the dashboard's main states for docs/dashboard.md, taken by the e2e tests.
screenshots: install system-deps
	PROMETORA_SCREENSHOTS_DIR=docs/screenshots $(BIN)/pytest tests/e2e -k sqlite -q $(PYTEST_ARGS)

bench: install system-deps
	$(BIN)/python -m bench.run $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .tmp
