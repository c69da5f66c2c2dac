# The course's commands. A newcomer needs two: `make lab` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# pytest workers for make test: the cores this process may really use (affinity and cgroup quota,
# tools/cpu_count.py), not pytest-xdist's "auto" (all the host's cores a container may see)
JOBS ?= $(shell $(PYTHON) tools/cpu_count.py)
# make bench also runs chapter 24 in full mode (CIFAR-10 time to 0.85, about 15 minutes); BENCH_ARGS= skips it
BENCH_ARGS ?= --chapters 24
RUN_JOBS ?= 1
D2L_VERSION := 1.0.3

.PHONY: help setup lab exercises test test-unit test-notebooks run outputs check-outputs doctor bench bench-full mutants site clean

help:
	@echo "make lab      set up .venv, write your copies of the chapters (make exercises) and open JupyterLab"
	@echo "make exercises  write the learner copies (solutions taken out) into workbook/; never overwrites your edits"
	@echo "make test     set up .venv if needed and run the whole test suite (smoke mode)"
	@echo "make run      execute every notebook into build/ (COURSE_SMOKE=1 quick mode, RUN_JOBS=2 two at a time)"
	@echo "make outputs  re-generate the outputs nbval checks and strip all others"
	@echo "make doctor   print versions, the chosen device and the data status"
	@echo "make bench    run the benchmarks (results in benchmarks/results/)"
	@echo "make bench-full  every chapter in full mode, per-chapter seconds (over an hour; results/full_suite.md, notebooks in build/full/)"
	@echo "make site     build the offline website build/site/ from make run's executed notebooks"
	@echo "make mutants  plant each catalogued bug (mutants/*.toml) in a notebook copy; all must be caught"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10 or newer is needed (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --progress-bar off -e '.[test]'
	# d2l is only the tests' reference implementation. Its exact pins (numpy==1.23.5, ...)
	# do not install on current Python, so it comes without them; pandas, requests and
	# scipy (what d2l.torch imports) come from the test extra above.
	$(PY) -m pip install --progress-bar off --no-deps d2l==$(D2L_VERSION)
	touch $(STAMP)

setup: $(STAMP)

# One torch thread per core this process may really use (affinity and cgroup quota): a kernel
# that starts one thread per host core on a 2-core container crawls. Override: LAB_THREADS=4.
LAB_THREADS ?= $(shell $(PYTHON) tools/cpu_count.py)

# JupyterLab opens on the repository: workbook/ (your copies, where you work the exercises) and
# notebooks/ (the chapters with their solutions).
lab: $(STAMP) exercises
	OMP_NUM_THREADS=$(LAB_THREADS) MKL_NUM_THREADS=$(LAB_THREADS) \
		$(VENV)/bin/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root,) \
		--ServerApp.root_dir=. --LabApp.default_url=/lab/tree/workbook

# The learner copies: each chapter with its exercises' solutions replaced by stubs (tools/exercises.py).
# A copy you changed is never overwritten: it is skipped and named.
exercises: $(STAMP)
	$(PY) tools/exercises.py learner --out workbook

test: $(STAMP)
	$(PY) -m ruff check course_utils examples tools benchmarks tests conftest.py notebooks
	$(PY) -m mypy
	COURSE_SMOKE=1 $(PY) -m pytest -n $(JOBS) --dist loadfile --nbval-lax --nbval-current-env \
		--cov=course_utils --cov-report=term $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(PY) -m pytest tests $(PYTEST_ARGS)

test-notebooks: $(STAMP)
	COURSE_SMOKE=1 $(PY) -m pytest -n $(JOBS) --dist loadfile --nbval-lax --nbval-current-env notebooks $(PYTEST_ARGS)

run: $(STAMP)
	$(PY) tools/run_notebooks.py --jobs $(RUN_JOBS) $(NOTEBOOKS)

outputs: $(STAMP)
	COURSE_SMOKE=1 $(PY) tools/notebook_outputs.py refresh $(NOTEBOOKS)

check-outputs: $(STAMP)
	$(PY) tools/notebook_outputs.py check

doctor: $(STAMP)
	$(PY) -m course_utils doctor

bench: $(STAMP)
	$(PY) benchmarks/run_all.py $(BENCH_ARGS)

bench-full: $(STAMP)
	$(PY) benchmarks/run_all.py --skip-speed --skip-suite --chapters all --name full_suite --keep build/full

# The website of the executed notebooks (tools/website/, docs/site.md): from build/ by default,
# i.e. run `make run` (full lessons; `COURSE_SMOKE=1 make run` for a quick check) first.
SITE_SRC ?= build
site: $(STAMP)
	$(PY) tools/website/build.py --src $(SITE_SRC) --out $(SITE_SRC)/site

# MUTANTS_ARGS: e.g. "--jobs 1", "--check", "--baseline", "-k 05_mlp::bias" (tools/mutants.py --help)
# Then the exercises' wrong answers (mutants/exercises/*.toml): each must be rejected by its check.
mutants: $(STAMP)
	$(PY) tools/mutants.py $(MUTANTS_ARGS) $(NOTEBOOKS)
	$(PY) tools/exercises.py verify --report build/exercises.json $(NOTEBOOKS)

clean:
	rm -rf build .coverage htmlcov
