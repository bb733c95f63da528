# memlab: `make demo` and `make test` work from a fresh clone.
PY      ?= python3
VENV    := .venv
PYTHON  := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
CORE    := $(VENV)/.installed-core
export MPLBACKEND := Agg

.PHONY: install install-core demo test test-fast bench clean

# everything the test suite needs (requirements.txt: torch, jax, ...), and memlab itself (editable)
install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -r requirements.txt
	$(PYTHON) -m pip install --quiet --no-deps -e .
	touch $(STAMP) $(CORE)

# the light core only (no torch, no jax): all the moons demo needs
install-core: $(CORE)

$(CORE): pyproject.toml
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e .
	touch $(CORE)

demo: install-core
	$(PYTHON) data.py --name moons
	$(PYTHON) run.py --name moons_demo --tasks -1
	$(PYTHON) plot.py --name moons_demo --format png
	@echo "demo plots are in plots/moons_demo/"

test: install
	$(PYTHON) -m pytest -q

test-fast: install
	$(PYTHON) -m pytest -q -m "not slow"

bench: install
	$(PYTHON) benchmarks/run_all.py $(BENCH)

clean:
	rm -rf results plots .pytest_cache
