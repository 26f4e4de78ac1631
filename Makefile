# The two commands of the README: `make lab` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup lab test bench outputs clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	# Point the notebooks' kernel at this environment's Python by full path.
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 \
		--display-name "Python 3 (GuardDuty lab)" > /dev/null
	touch $@

# JupyterLab refuses to run as root unless told to (containers often are).
lab: setup
	$(BIN)/labkit local up
	$(BIN)/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root)

test: setup
	bash tests/run.sh

bench: setup
	$(BIN)/python -m bench.run --repeat 3

# After changing a notebook: store the outputs nbval compares, strip the rest.
outputs: setup
	$(BIN)/python tests/refresh_outputs.py

clean:
	-$(BIN)/labkit local down
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
