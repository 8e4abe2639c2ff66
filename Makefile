# Every target sets itself up: `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
PYPATHS := stalwart tests examples benchmarks

.PHONY: demo test lint bench clean flake soak fuzz

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PIP) install -q -e '.[test]'
	touch $@

$(VENV)/.installed-bench: pyproject.toml | $(PY)
	$(PIP) install -q -e '.[test,bench]'
	touch $@

demo: $(VENV)/.installed
	$(PY) -m examples.shop --seconds 6

lint: $(VENV)/.installed-test
	$(PY) -m ruff check $(PYPATHS)
	$(PY) -m ruff format --check $(PYPATHS)
	$(PY) -m mypy

# the browser tests drive Debian's chromium (installed here when absent; without it, and
# without root to install it, make test stops: the page tests must not pass by skipping)
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	elif command -v sudo >/dev/null 2>&1; then \
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	fi
	@test -x $(CHROMIUM) || { echo "make: chromium is missing at $(CHROMIUM) and could not be" \
		"installed (needs root or sudo): install Debian's chromium package, then run make test" \
		"again" >&2; exit 1; }

# make test runs the suite on 2 processes at once (pytest-xdist, each taking the next test as it
# finishes one): about a third faster on 2 cores. make test WORKERS=0 runs it on one process
# (3 workers take half the time, but on 2 cores their load makes timing-bound tests fail)
WORKERS ?= 2
XDIST = $(if $(filter-out 0,$(WORKERS)),-n $(WORKERS) --dist worksteal,)
test: lint $(CHROMIUM)
	CI=true $(PY) -m pytest $(XDIST)

# run the whole suite N times, each from a clean clone of this checkout's HEAD, and list every
# test that failed at least once (make flake N=10)
N ?= 5
flake: $(VENV)/.installed-test $(CHROMIUM)
	PYTEST_WORKERS=$(WORKERS) $(PY) tests/flake.py --runs $(N)

# the fuzz suite with many more examples than make test gives it (make fuzz EXAMPLES=5000)
EXAMPLES ?= 2000
fuzz: $(VENV)/.installed-test
	STALWART_FUZZ_EXAMPLES=$(EXAMPLES) $(PY) -m pytest tests/fuzz -p no:cacheprovider

# a SIGKILL storm under load with a ledger of acknowledged requests (make soak SOAK_SECONDS=300;
# SOAK_ARGS="--standby --pool" or "--pool --passivate 0.05" for spares, Pools, passivation)
SOAK_SECONDS ?= 60
SOAK_ARGS ?=
soak: $(VENV)/.installed-test
	$(PY) benchmarks/soak.py --seconds $(SOAK_SECONDS) $(SOAK_ARGS)

bench: $(VENV)/.installed-bench $(CHROMIUM)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
