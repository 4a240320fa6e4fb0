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

export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: run test test-postgres install lint format bench clean

run: install
	$(BIN)/hearth serve

test: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/pytest

# The suite again with every test server on PostgreSQL instead of SQLite (storage tests run on both anyway).
test-postgres: install
	HEARTH_TEST_DATABASE=postgres $(BIN)/pytest

install: $(STAMP)

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

lint:
	$(BIN)/ruff check src tests bench

format:
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: install
	$(BIN)/python bench/gateway.py --llm

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
