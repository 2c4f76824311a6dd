# Each target makes its own virtualenv (.venv) and installs what it needs from pyproject.toml.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck bench model-check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/rack-reconciliation/demo.py

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/lint-imports --config pyproject.toml

typecheck: $(STAMP)
	$(VENV)/bin/mypy --strict src/fabrica

bench: $(STAMP)
	$(PY) bench/http_crud.py

# The concurrency model check (issue 19) on every backend, MINUTES of load each.
MINUTES ?= 1
model-check: $(STAMP)
	$(PY) bench/model_check.py --backend all --minutes $(MINUTES)

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
