# The README's two commands: `make lab` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NOTEBOOKS := chapters solutions exercises

.PHONY: lab test test-py test-nb bench exercises clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# JupyterLab refuses to run as root unless told; containers and lab machines often are root.
LAB_FLAGS := $(if $(filter 0,$(shell id -u)),--allow-root,)

lab: $(STAMP)
	$(BIN)/jupyter lab $(LAB_FLAGS) chapters/

test: test-py test-nb

test-py: $(STAMP)
	$(BIN)/python -m pytest -n 2 tests/

test-nb: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadscope -p no:randomly --nbval --nbval-current-env \
		--nbval-sanitize-with tests/nbval_sanitize.cfg $(NOTEBOOKS)

bench: $(STAMP)
	$(BIN)/python -m benchmarks

exercises: $(STAMP)
	$(BIN)/mmlab exercises

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
