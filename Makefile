# Hearth: `make run` and `make test` do all the set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# llama-cpp-python has no prebuilt wheel; building it takes minutes, so the wheel is kept outside the repo and
# reused by every clone on this machine. GGML_NATIVE=OFF: the native build crashes on these CPUs (AMX path).
WHEELS ?= $(HOME)/.cache/hearth/wheels
LLAMA_VERSION := 0.3.36
LLAMA_WHEEL := $(WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-py3-none-linux_x86_64.whl
STAMP := $(VENV)/.installed
# The web UI's npm libraries, copied there by `make install` (git-ignored).
WEB_VENDOR := src/hearth/web/vendor
WEB_STAMP := $(WEB_VENDOR)/.installed

export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: run test test-postgres install lint format bench clean chromium nginx

run: install
	$(BIN)/hearth serve

test: install chromium nginx
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/pytest

# The suite again with every test server on PostgreSQL instead of SQLite (storage tests run on both anyway).
test-postgres: install chromium nginx
	HEARTH_TEST_DATABASE=postgres $(BIN)/pytest

install: $(STAMP) $(WEB_STAMP)

$(LLAMA_WHEEL):
	@mkdir -p $(WHEELS)
	@echo "Building llama-cpp-python $(LLAMA_VERSION) (portable CPU build, once per machine; several minutes)..."
	CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF" $(PYTHON) -m pip wheel --no-deps --no-cache-dir \
		-w $(WHEELS) llama-cpp-python==$(LLAMA_VERSION)

$(STAMP): pyproject.toml $(LLAMA_WHEEL)
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --find-links $(WHEELS) -e '.[dev]'
	touch $(STAMP)

# ---- web UI (docs/ui.md) ----
# Front-end libraries come from the npm registry, pinned by package-lock.json; `npm ci` runs again only when the
# lock file changes. The files the pages import are copied into the package's git-ignored web/vendor/, which
# `hearth serve` serves; nothing is fetched at run time and nothing is built.
$(WEB_STAMP): package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund
	mkdir -p $(WEB_VENDOR)
	cp node_modules/marked/lib/marked.esm.js $(WEB_VENDOR)/marked.esm.js
	cp node_modules/marked/LICENSE $(WEB_VENDOR)/marked.LICENSE
	cp node_modules/dompurify/dist/purify.es.mjs $(WEB_VENDOR)/purify.es.mjs
	cp node_modules/dompurify/LICENSE $(WEB_VENDOR)/dompurify.LICENSE
	touch $(WEB_STAMP)

# The browser tests drive Debian's Chromium (Playwright's own browser download is not used).
chromium:
	@test -x /usr/bin/chromium || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

# The scale-out test (tests/test_scale_out_replicas.py) puts three replicas behind Debian's nginx, which it runs
# itself with its own config (nothing is installed as a service or started at boot).
nginx:
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y nginx)

lint:
	$(BIN)/ruff check src tests bench

format:
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: install
	$(BIN)/python bench/gateway.py --llm

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache node_modules $(WEB_VENDOR) test-artifacts
