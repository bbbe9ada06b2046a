# The book's commands. A fresh clone needs only python3 (3.11), make and npm:
#   make book    set up, execute every chapter at book scale, render _build/html/index.html
#   make test    set up, run the whole test suite
# See README.md for the others.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
SCALE  ?= book
SEED   ?= 0
JOBS   ?=
SLUG   ?=
SEEDS  ?= 3
EXECUTOR ?= local
SCHEDULER ?=
JOBS_FLAG := $(if $(JOBS),--jobs $(JOBS),)
DASK_FLAGS := --executor $(EXECUTOR) $(if $(SCHEDULER),--scheduler $(SCHEDULER),)

.PHONY: setup data book chapter sweep lab student teacher test unit notebooks clean lock freeze lint bench help

help:
	@echo "make setup | data | book [SCALE=ci|book|paper] | chapter SLUG=... [SCALE=...] | sweep SLUG=... SEEDS=N"
	@echo "     | lab | student | teacher | test | notebooks | bench | clean"

$(VENV)/.stamp: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

node_modules/.stamp: package.json package-lock.json
	@command -v npm >/dev/null || { echo "make setup needs npm (Node.js) to vendor MathJax 3 for offline math (apt-get install npm)"; exit 1; }
	npm ci --no-audit --no-fund --silent
	touch $@

# Fashion-MNIST, once per environment: Debian's package through apt-get where root, else the pinned
# download, else a message saying which stand-in the chapters will use (setup never fails for data).
# `make data` tries again.
$(VENV)/.data-stamp: $(VENV)/.stamp
	$(PY) -m lib.data setup
	touch $@

data: $(VENV)/.stamp
	$(PY) -m lib.data setup

setup: $(VENV)/.stamp node_modules/.stamp $(VENV)/.data-stamp

book: setup
	$(PY) -m lib.build --scale $(SCALE) --seed $(SEED) $(JOBS_FLAG)

chapter: setup
	@test -n "$(SLUG)" || { echo "usage: make chapter SLUG=<slug> [SCALE=ci|book|paper]; slugs: $$(ls chapters | tr '\n' ' ')"; exit 2; }
	$(PY) -m lib.build --scale $(SCALE) --seed $(SEED) --slug $(SLUG) $(JOBS_FLAG)

# One chapter over seeds 0..SEEDS-1, on local processes or a Dask cluster (EXECUTOR=dask
# [SCHEDULER=tcp://host:8786]); the scorecard and the sweeps page show each claim over seeds.
sweep: setup
	@test -n "$(SLUG)" || { echo "usage: make sweep SLUG=<slug> [SCALE=ci|book|paper] [SEEDS=N] [EXECUTOR=dask]"; exit 2; }
	$(PY) -m lib.build --scale $(SCALE) --slug $(SLUG) --seeds 0-$$(( $(SEEDS) - 1 )) $(DASK_FLAGS) $(JOBS_FLAG)

# JupyterLab on the book's environment; the chapters' MyST notebooks open directly (jupytext).
# (.jupyter/lab-overrides.json makes a MyST .md open as a notebook by default.)
lab: setup
	mkdir -p $(VENV)/share/jupyter/lab/settings
	cp .jupyter/lab-overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	$(VENV)/bin/jupyter lab --notebook-dir=chapters $(if $(filter 0,$(shell id -u)),--allow-root,)

# The book without (student) or with (teacher) the exercises' solutions, both with -W.
student: setup
	$(PY) -m lib.build --scale $(SCALE) --seed $(SEED) --flavour student $(JOBS_FLAG)

teacher: setup
	$(PY) -m lib.build --scale $(SCALE) --seed $(SEED) --flavour teacher $(JOBS_FLAG)

# The whole test suite: the ci book is executed and rendered (-W), the claims of every chapter are
# measured at seeds 0, 1 and 7919 (every ci claim must hold, and its control fail, whatever the
# seed; 7919 checks that no chapter assumes a small seed, and so does the live-kernel run of
# every theory notebook in tests/test_live.py), then
# one pytest run checks the library (unit tests), the pipeline, the seed sweep, every executed
# notebook again with nbval (identical printed outputs) and the rendered book in headless Chromium.
test: setup
	@status=0; \
	$(PY) -m lib.build --scale ci $(JOBS_FLAG) || status=1; \
	$(PY) -m lib.build --scale ci --flavour student $(JOBS_FLAG) || status=1; \
	$(PY) -m lib.build --scale ci --seeds 0,1,7919 --notebook reproduce $(JOBS_FLAG) || status=1; \
	$(PY) -m pytest -n 2 --dist loadscope -p no:cacheprovider \
	    --nbval --nbval-current-env --nbval-cell-timeout=900 \
	    --nbval-sanitize-with tests/sanitize.cfg \
	    tests _build/ci/seed-0/chapters || status=1; \
	exit $$status

unit: setup
	$(PY) -m pytest -n 2 tests/unit

notebooks: setup
	$(VENV)/bin/jupytext --to ipynb chapters/*/theory.md chapters/*/reproduce.md

bench: setup
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

lint: setup
	$(VENV)/bin/ruff check lib tests benchmarks

# requirements.txt is the lock of the direct dependencies that pyproject.toml declares: install
# them (and the test extra) into the environment, then pin everything that is there.
lock: setup
	$(PY) -m pip install --quiet -e ".[test]"
	{ head -2 requirements.txt; $(PY) -m pip freeze --exclude-editable | grep -v "^#" | sed 's/+cpu$$//'; } > requirements.txt.new
	mv requirements.txt.new requirements.txt

freeze: lock

clean:
	rm -rf _build
