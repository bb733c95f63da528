# memlab: `make demo` and `make test` work from a fresh clone.
PY      ?= python3
VENV    := .venv
PYTHON  := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
export MPLBACKEND := Agg

.PHONY: install demo test test-fast bench clean

install: $(STAMP)

$(STAMP): requirements.txt
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

demo: install
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
