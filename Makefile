# One command to set up and run the bot, one to set up and run the tests (see README).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: setup run demo test lint bench lock base-image refresh

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

run: setup
	$(BIN)/sitrep run

demo: setup
	$(BIN)/sitrep demo

lint: setup
	$(BIN)/ruff check .

test: setup
	$(BIN)/ruff check .
	$(BIN)/hadolint Dockerfile
	$(BIN)/pytest -q

bench: setup
	$(BIN)/python bench/pir_scale.py

# Reproducible images: the Dockerfile installs requirements.lock (every package pinned, with its hashes, from PyPI)
# on a base image pinned by digest. `make refresh` renews both (after a change of dependencies in pyproject.toml,
# or to take security fixes); commit the result.
refresh: lock base-image

lock: setup
	$(BIN)/pip install -q uv
	printf 'setuptools>=77\nwheel\n' | $(BIN)/uv pip compile pyproject.toml - --quiet --generate-hashes \
	  --python-version 3.11 --python-platform linux --index-url https://pypi.org/simple --output-file requirements.lock

base-image:  # needs docker: the digest python:3.11-slim points at now
	digest=$$(docker buildx imagetools inspect python:3.11-slim --format '{{json .Manifest.Digest}}' | tr -d '"') && \
	  sed -i -E "s/python:3\.11-slim@sha256:[0-9a-f]{64}/python:3.11-slim@$$digest/" Dockerfile
