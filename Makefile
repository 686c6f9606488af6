# keras-sumix developer commands. Everything runs inside .venv, created on demand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BACKENDS := tensorflow jax torch
# CPU builds that install fast; torch==2.13.0 is a CPU wheel (an open range
# would pull a multi-GB CUDA build).
CPU_DEPS := tensorflow-cpu "jax[cpu]" torch==2.13.0

.PHONY: install test test-serial lint demo bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(CPU_DEPS)
	$(PY) -m pip install -q -e ".[data,viz,study,dev]"
	touch $@

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check keras_sumix tests benchmarks examples

# Every backend runs the suite without the slow tests; the slow ones (long
# runs) run once, under JAX, with their reports (-rP) in the log. Two lanes
# share the (2-core) machine: JAX, whose time goes to single-threaded XLA
# compilation, runs alongside TensorFlow then torch (one thread: OpenMP's
# spinning threads crawl on a shared CPU). Its log is printed when it ends.
# `make test-serial` runs the backends one after another instead.
test: install lint
	@mkdir -p .test-logs; \
	( KERAS_BACKEND=jax $(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS) && \
	  { KERAS_BACKEND=jax $(PY) -m pytest -q -m slow -rP $(PYTEST_ARGS); \
	    s=$$?; [ $$s -eq 0 ] || [ $$s -eq 5 ]; } ) > .test-logs/jax.log 2>&1 & \
	jax=$$!; status=0; \
	echo "=== KERAS_BACKEND=tensorflow ==="; \
	KERAS_BACKEND=tensorflow $(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS) || status=1; \
	echo "=== KERAS_BACKEND=torch ==="; \
	OMP_NUM_THREADS=1 KERAS_BACKEND=torch $(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS) || status=1; \
	wait $$jax || status=1; \
	echo "=== KERAS_BACKEND=jax (ran alongside; then the slow tests) ==="; \
	cat .test-logs/jax.log; \
	[ $$status -eq 0 ] && echo "=== all backends passed ===" || echo "=== FAILED ==="; \
	exit $$status

test-serial: install lint
	@set -e; for b in $(BACKENDS); do \
	  echo "=== KERAS_BACKEND=$$b ==="; \
	  KERAS_BACKEND=$$b $(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS); \
	done
	@echo "=== slow tests, KERAS_BACKEND=jax ==="
	@KERAS_BACKEND=jax $(PY) -m pytest -q -m slow -rP $(PYTEST_ARGS); \
	  status=$$?; [ $$status -eq 0 ] || [ $$status -eq 5 ]  # 5: none selected

demo: install
	$(VENV)/bin/keras-sumix demo

bench: install
	KERAS_BACKEND=jax $(PY) benchmarks/mixers.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis .test-logs
