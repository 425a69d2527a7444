# Two entry points for a fresh machine with only Python 3: `make demo` and `make test`.
# Tests run in two xdist workers with one compute thread each (two threads per worker oversubscribe 2 cores).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.ugn-installed

.PHONY: demo test test-fast install clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e '.[all]'
	# SAM2 builds against the torch already installed (no isolated build env, no CUDA extension).
	$(PY) -m pip install -q setuptools wheel
	SAM2_BUILD_CUDA=0 $(PY) -m pip install -q --no-build-isolation sam2==1.1.0
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/ugn demo --overwrite  # a rerun replaces demo_output/

test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -n 2

test-fast: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 -m "not slow"

clean:
	rm -rf $(VENV) demo_output .pytest_cache
