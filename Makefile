# chaingate: every target installs what it needs on a fresh Debian machine.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup demo test lint bench clean devnet-up devnet-down system-deps docs demo-capture screenshots

setup: $(VENV)/.installed node_modules/.installed system-deps

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# anvil and solc, pinned in package.json / package-lock.json. Not `npm ci`: the anvil package
# lists optional binaries for other platforms that the lock cannot hold, and ci refuses that.
node_modules/.installed: package.json package-lock.json
	npm install --no-save --no-audit --no-fund --loglevel=error
	touch $@

# litecoind (the Bitcoin stand-in, SPEC section 11) and PostgreSQL binaries for a throwaway
# cluster when no server is reachable. Installed from Debian only when missing.
system-deps:
	@command -v litecoind >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq litecoind; }
	@{ pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } \
	  || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq postgresql; }
	@# Debian's Chromium for the ops console's browser tests (Playwright drives it through
	@# executable_path; `playwright install` would download a browser, which cannot work here).
	@test -x /usr/bin/chromium || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }

demo: setup
	$(BIN)/chaingate demo

test: setup
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	@# every test module imports (mypy does not cover tests/): a moved name fails here, not in CI
	set -o pipefail; $(BIN)/pytest --collect-only -q -p no:cacheprovider | tail -n 1

bench: setup
	$(BIN)/python bench/run.py

# The README's pictures. Graphviz only here: `make test` and `make demo` never need it.
docs: docs/dataflow.svg

docs/dataflow.svg: docs/dataflow.dot
	@command -v dot >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq graphviz; }
	dot -Tsvg $< -o $@

# The ops console's screenshots (docs/screenshots/*.png) from the demo's data: the demo runs on a
# devnet of the test's own (free ports, not `make demo`'s) and Chromium saves every page.
screenshots: setup
	CHAINGATE_SCREENSHOTS=1 $(BIN)/pytest -q -p no:cacheprovider tests/test_screenshots.py

# The demo's terminal output as docs/demo.svg and docs/demo.txt (one run, on the fixed devnet).
demo-capture: setup
	$(BIN)/chaingate demo --once --capture docs/demo.svg

devnet-up: setup
	$(BIN)/chaingate devnet up

devnet-down: setup
	$(BIN)/chaingate devnet down

clean:
	-$(BIN)/chaingate devnet down
	rm -rf $(VENV) node_modules .devnet .pytest_cache .mypy_cache .ruff_cache
