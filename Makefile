# The README's commands. `make test` is what CI runs (.ci/run).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test quality style demo bench clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# torch first, pinned to the CPU build that pip finds locally; a bare `torch` requirement would pull CUDA.
$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

quality: $(STAMP)
	$(VENV)/bin/ruff check src tests scripts
	$(VENV)/bin/ruff format --check src tests scripts

style: $(STAMP)
	$(VENV)/bin/ruff check --fix src tests scripts
	$(VENV)/bin/ruff format src tests scripts

test: $(STAMP)
	$(MAKE) quality
	$(VENV)/bin/python -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/hf-textgen demo

bench: $(STAMP)
	$(VENV)/bin/hf-textgen bench --output_dir bench_results

clean:
	rm -rf $(VENV) build dist *.egg-info
