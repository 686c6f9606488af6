# keras-sumix developer commands. Everything runs inside .venv, created on demand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BACKENDS := tensorflow jax torch
# CPU builds that install fast; torch==2.13.0 is a CPU wheel (an open range
# would pull a multi-GB CUDA build).
CPU_DEPS := tensorflow-cpu "jax[cpu]" torch==2.13.0

.PHONY: install test lint demo bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(CPU_DEPS)
	$(PY) -m pip install -q -e ".[data,viz,dev]"
	touch $@

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check keras_sumix tests benchmarks examples

test: install lint
	@set -e; for b in $(BACKENDS); do \
	  echo "=== KERAS_BACKEND=$$b ==="; \
	  KERAS_BACKEND=$$b $(PY) -m pytest -q $(PYTEST_ARGS); \
	done

demo: install
	$(VENV)/bin/keras-sumix demo

bench: install
	KERAS_BACKEND=jax $(PY) benchmarks/mixers.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
