# The two commands of the README:
#   make run    install seedgrid into .venv and start the bot (needs DISCORD_TOKEN and config.toml)
#   make test   install seedgrid with its test tools into .venv, lint, type-check and run the tests
PYTHON ?= python3
VENV   ?= .venv
# On a GPU machine plain "torch" from PyPI brings its CUDA libraries. The tests pin the CPU build
# the CI machines carry locally; any torch >= 2.4 works for running the bot.
TORCH      ?= torch
TEST_TORCH ?= torch==2.13.0
CONFIG     ?= config.toml
BIN := $(VENV)/bin

.PHONY: run test lint typecheck pytest bench install-run install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install-run: $(BIN)/python
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e .

install-test: $(BIN)/python
	$(BIN)/pip install -q "$(TEST_TORCH)"
	$(BIN)/pip install -q -e ".[dev]"

$(CONFIG):
	cp config.example.toml $(CONFIG)
	@echo "created $(CONFIG) from config.example.toml (defaults: Stable Diffusion 1.5 from the Hugging Face Hub)"

run: install-run $(CONFIG)
	$(BIN)/seedgrid check --config $(CONFIG)
	$(BIN)/seedgrid run --config $(CONFIG)

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy

pytest:
	$(BIN)/python -m pytest

test: install-test lint typecheck pytest

bench: install-test
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
