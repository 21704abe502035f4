# Two commands on a fresh machine: `make demo` and `make test`.
# Both create .venv and install hearflow with its pinned dependencies first.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-fast install gpu-check clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[audio,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m hearflow.demo

test: $(STAMP)
	$(PY) -m pytest -q

# everything but the tests marked slow (over ~10 s each): for quick loops while editing
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

# on a machine with an NVIDIA GPU: every GPU test and the GPU benchmarks, one JSON report
gpu-check: $(STAMP)
	$(PY) -m pip install --quiet -e '.[gpu,audio,dev]'
	$(PY) scripts/gpu_check.py --out out/gpu_check.json

clean:
	rm -rf $(VENV) out .pytest_cache
