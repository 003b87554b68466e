# pktmask developer tasks. `make demo` and `make test` work on a fresh Debian machine with Python 3.11.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
BENCH_DIR ?= $(HOME)/.cache/pktmask-bench

.PHONY: install system-deps demo test test-fast lint typecheck bench soak mutants clean

install: $(STAMP)

# A regular (not editable) install: setup.py compiles the per-packet modules with mypyc
# into the venv, so the stamp follows every source file. PKTMASK_PURE=1 skips compiling.
SOURCES := pyproject.toml setup.py $(shell find src -name '*.py')

$(STAMP): $(SOURCES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	rm -rf build/lib*  # setuptools reuses it: a module moved or removed in src must not ship
	$(BIN)/python -m pip install -q '.[test]'
	@$(BIN)/pktmask --version
	@touch $(STAMP)

# tshark/editcap/capinfos (test oracles) and tcprewrite (bench baseline), from Debian.
system-deps:
	@if command -v tshark >/dev/null && command -v editcap >/dev/null && command -v tcprewrite >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "installing tshark and tcpreplay from apt"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends tshark tcpreplay >/dev/null; \
	elif command -v sudo >/dev/null; then \
	  sudo DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends tshark tcpreplay >/dev/null; \
	else echo "tshark/tcpreplay missing and not root: oracle tests will fail"; exit 1; fi

demo: install
	@mkdir -p demo
	$(BIN)/pktmask mask samples/sample.pcap demo/sample-masked.pcap --force --dedup
	@echo "sanitized capture: demo/sample-masked.pcap"

# Lint and the type check first; then the suite runs twice: against the installed build,
# which must be the compiled one, and against the same source run as plain Python (the
# fallback without a compiler).
test: install system-deps lint typecheck
	PKTMASK_EXPECT_BUILD=compiled $(BIN)/python -m pytest -q
	PKTMASK_EXPECT_BUILD=pure PYTHONPATH=$(CURDIR)/src $(BIN)/python -m pytest -q

# Planted bugs (scripts/mutants.toml), one at a time, each against its test subset on the pure
# build of a copy of src/: prints the kill rate and every survivor. Slow, so not part of `make test`.
mutants: install system-deps
	$(BIN)/python scripts/mutants.py --jobs 2

lint: install
	$(BIN)/ruff check src tests scripts setup.py

# All of src/, not only the compiled modules (mypy is pinned in the test extras).
typecheck: install
	$(BIN)/mypy --check-untyped-defs src/

bench: install system-deps
	$(BIN)/python scripts/bench.py --cache $(BENCH_DIR)

# bench's companion: random SIGINT/TERM/HUP at random moments (start-up included) over the
# option sets and --jobs, a busy CPU beside; every run must end by its signal within 2 s
# and leave nothing behind. SOAK_RUNS=N for more or fewer runs.
SOAK_RUNS ?= 120
soak: install
	$(BIN)/python scripts/signal_soak.py --runs $(SOAK_RUNS) --cache $(BENCH_DIR)

clean:
	rm -rf $(VENV) demo build dist .pytest_cache .ruff_cache .mypy_cache src/*.egg-info
