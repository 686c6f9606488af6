# keras-sumix developer commands. Everything runs inside .venv, created on demand.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BACKENDS := tensorflow jax torch
# The exact versions `make install` installs (every package, CPU builds
# included), so a fresh clone installs what CI last passed with. pip freeze of
# a verified environment rather than a resolver's lock: a resolver (uv lock,
# pip-compile) picks torch's multi-GB CUDA build, and the freeze records
# exactly the environment the suite passed in, local version labels included.
# uv (itself locked) installs those exact versions with nothing to resolve:
# about a minute where pip takes 4 to 10 (it downloads in parallel). It
# byte-compiles what it installs (--compile-bytecode, about 50 s): where
# PYTHONDONTWRITEBYTECODE is set (CI machines) nothing else writes the .pyc
# files, and every Python process the suite starts would compile Keras,
# TensorFlow, JAX and torch from source (`import keras_sumix`: 21 s -> 7 s;
# without it `make test` took 1937 s in a fresh clone). The CPU build of
# torch comes from pip's find-links folder (this machine's /opt/wheels:
# `pip config get global.find-links`).
LOCK := requirements/lock.txt
FIND_LINKS = $(addprefix --find-links ,$(or $(PIP_FIND_LINKS),$(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null)))
EXTRAS := data,viz,dev,docs
# For `make lock` / `make test-latest`: the newest releases. torch==2.13.0 is a
# CPU wheel (an open range would pull a multi-GB CUDA build).
CPU_DEPS := tensorflow-cpu "jax[cpu]" torch==2.13.0
LATEST := .venv-latest

# Each pytest run its own temporary folder: pytest keeps only the newest three
# of its shared /tmp/pytest-of-USER folders and deletes older ones, even while
# another pytest on the machine still uses them.
TMP = --basetemp=$(CURDIR)/.test-logs/tmp/$(1)
FAST := not slow and not wheel
ONCE := slow or wheel
# The JAX lane compiles thousands of small programs (every op of every new
# shape), each run once: LLVM's optimisation level 0 cuts compile-bound tests by
# about a quarter (test_layers.py: 237 s -> 171 s) without changing what is
# computed (IEEE arithmetic either way; XLA's CPU fast-math stays off).
JAX_TEST_ENV := KERAS_BACKEND=jax \
	XLA_FLAGS="--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
# JAX's compilation cache, emptied at the start of each `make test`: tests
# that build the same small model at the same shapes (and the scripts, pages
# and notebooks the suite runs under JAX in subprocesses) compile it once.
JAX_CACHE := $(CURDIR)/.test-logs/jax-cache
CACHE_ENV := JAX_COMPILATION_CACHE_DIR=$(JAX_CACHE) \
	JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=0

.PHONY: pip-check device-check install test test-serial test-latest lock lint docs dist demo study bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "$$(grep '^uv==' $(LOCK))"
	$(VENV)/bin/uv pip install -q --python $(PY) --no-deps -r $(LOCK) $(FIND_LINKS) --compile-bytecode
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PIP_CHECK)
	touch $@

# Every installed requirement is met, except keras-hub's tensorflow-text
# (installed with --no-deps: it pulls the full tensorflow next to
# tensorflow-cpu, and only keras-hub's text tokenizers use it).
PIP_CHECK = @broken=$$($(PY) -m pip check 2>&1 | grep -v -e '^keras-hub .* requires tensorflow-text' \
	  -e '^No broken requirements'); [ -z "$$broken" ] || { echo "$$broken"; exit 1; }

pip-check:
	$(PIP_CHECK)

# A fresh environment of the newest releases (what users get from PyPI).
$(LATEST)/.installed:
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install -q --upgrade pip setuptools wheel uv
	$(LATEST)/bin/python -m pip install -q $(CPU_DEPS)
	$(LATEST)/bin/python -m pip install -q -e ".[$(EXTRAS)]"
	$(LATEST)/bin/python -m pip install -q --no-deps keras-hub
	$(LATEST)/bin/python tools/keras_hub_requirements.py | \
	  xargs -d '\n' $(LATEST)/bin/python -m pip install -q
	$(MAKE) --no-print-directory pip-check VENV=$(LATEST)
	touch $@

# For whoever updates the lock (not in CI): the suite against the newest
# releases, then `make lock` freezes that same environment.
test-latest:
	rm -rf $(LATEST)
	$(MAKE) $(LATEST)/.installed
	$(MAKE) test VENV=$(LATEST)

lock: $(LATEST)/.installed
	{ sed -n '1,/^[^#]/{/^#/p}' $(LOCK); \
	  $(LATEST)/bin/python -m pip freeze --all --exclude-editable; } > $(LOCK).new
	mv $(LOCK).new $(LOCK)
	@echo "wrote $(LOCK) from $(LATEST); run make test, then commit it"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check keras_sumix study tests benchmarks examples

# The documentation site; --strict turns a broken reference into a failure.
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir .test-logs/site

# The sdist and the wheel, checked as PyPI would.
dist: install
	rm -rf dist
	$(PY) -m build --no-isolation --outdir dist .
	$(VENV)/bin/twine check --strict dist/*

# Every backend runs the suite without the slow tests; the slow ones (long
# runs) and the wheel tests (fresh JAX-only and torch-only environments) run
# once, in the JAX lane, with their reports (-rP) in the log. Two lanes
# share the (2-core) machine: JAX, whose time goes to single-threaded XLA
# compilation, runs alongside TensorFlow then torch, each on one thread for
# its kernels (OpenMP's spinning threads crawl on a shared CPU; TensorFlow's
# test_models.py: 131 s -> 118 s beside a busy core). Its log is printed when
# it ends.
# `make test-serial` runs the backends one after another instead.
test: install lint docs
	@rm -rf $(JAX_CACHE); mkdir -p .test-logs/tmp; export $(CACHE_ENV); \
	( $(JAX_TEST_ENV) $(PY) -m pytest -q -m "$(FAST)" $(call TMP,jax) $(PYTEST_ARGS) && \
	  { $(JAX_TEST_ENV) $(PY) -m pytest -q -m "$(ONCE)" -rP $(call TMP,once) $(PYTEST_ARGS); \
	    s=$$?; [ $$s -eq 0 ] || [ $$s -eq 5 ]; } ) > .test-logs/jax.log 2>&1 & \
	jax=$$!; status=0; \
	echo "=== KERAS_BACKEND=tensorflow ==="; \
	TF_NUM_INTRAOP_THREADS=1 KERAS_BACKEND=tensorflow $(PY) -m pytest -q -m "$(FAST)" $(call TMP,tensorflow) $(PYTEST_ARGS) || status=1; \
	echo "=== KERAS_BACKEND=torch ==="; \
	OMP_NUM_THREADS=1 KERAS_BACKEND=torch $(PY) -m pytest -q -m "$(FAST)" $(call TMP,torch) $(PYTEST_ARGS) || status=1; \
	wait $$jax || status=1; \
	echo "=== KERAS_BACKEND=jax (ran alongside; then the slow and wheel tests) ==="; \
	cat .test-logs/jax.log; \
	[ $$status -eq 0 ] && echo "=== all backends passed ===" || echo "=== FAILED ==="; \
	exit $$status

test-serial: install lint docs
	@set -e; for b in $(BACKENDS); do \
	  echo "=== KERAS_BACKEND=$$b ==="; \
	  KERAS_BACKEND=$$b $(PY) -m pytest -q -m "$(FAST)" $(PYTEST_ARGS); \
	done
	@echo "=== slow and wheel tests, KERAS_BACKEND=jax ==="
	@KERAS_BACKEND=jax $(PY) -m pytest -q -m "$(ONCE)" -rP $(PYTEST_ARGS); \
	  status=$$?; [ $$status -eq 0 ] || [ $$status -eq 5 ]  # 5: none selected

# On a CUDA machine: the GPU table's figures (docs/gpu.md), within 8 minutes.
device-check: install
	$(PY) benchmarks/device_check.py

# The demo and the study run from the clone (`study/`, not in the wheel):
# `make demo`, `make study STUDY_ARGS="--parts A"` (recorded runs are skipped).
demo: install
	$(PY) -m study.demo $(DEMO_ARGS)

study: install
	KERAS_BACKEND=$${KERAS_BACKEND:-tensorflow} $(PY) -m study $(STUDY_ARGS)

bench: install
	KERAS_BACKEND=jax $(PY) benchmarks/mixers.py

clean:
	rm -rf $(VENV) $(LATEST) .pytest_cache .ruff_cache .hypothesis .test-logs dist
