# make run   - create .venv, install, run the quick benchmark suite, print the leaderboard
#              (and write runs/leaderboard.html); re-running skips the runs already done
# make test  - create .venv, install, run the test suite (without tests marked slow)
# make bench - performance benchmarks (ratios against peers, measured in one run)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.cosmobench-installed
# pytest-xdist workers for make test (one per core here; each test process uses one thread)
TEST_WORKERS ?= 2

.PHONY: install run test test-slow bench clean

$(STAMP): setup.cfg pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip "setuptools>=64" wheel
	$(PY) -m pip install --quiet -e ".[test]" -c constraints.txt
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(VENV)/bin/cosmobench bench experiments/suites/quick.yaml
	$(VENV)/bin/cosmobench leaderboard --format html --out runs/leaderboard.html

test: install
	$(PY) -m pytest -n $(TEST_WORKERS)

test-slow: install
	$(PY) -m pytest -m slow

bench: install
	$(PY) -m benchmarks

clean:
	rm -rf runs build *.egg-info
