# make run  : set up .venv if needed, execute every notebook headless, write build/notebooks and build/html
# make test : set up .venv if needed, run the unit tests and the notebooks (nbval) in the ci profile
# make lab  : set up .venv if needed and open JupyterLab on notebooks/
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.nbutils-installed
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))

.PHONY: setup run test lab clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

run: setup
	mkdir -p build/notebooks build/html
	$(BIN)/jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=-1 --output-dir build/notebooks $(NOTEBOOKS)
	$(BIN)/jupyter nbconvert --to html --output-dir build/html build/notebooks/*.ipynb

test: setup
	NBUTILS_PROFILE=$${NBUTILS_PROFILE:-ci} $(BIN)/python -m pytest -p no:cacheprovider --nbval-lax tests notebooks

lab: setup
	$(BIN)/jupyter lab notebooks

clean:
	rm -rf build data/cache
