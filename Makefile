# Everything installs from this repo's own files into .venv; nothing needs to be on PATH but python3.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST := $(BIN)/python -m pytest

.PHONY: install run test lint typecheck unit chaos-ci chaos bench load mutation docs lock clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/alchemiser run

lint: $(STAMP)
	$(BIN)/ruff check shared services tests benchmarks
	$(BIN)/ruff format --check shared services tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/vulture

typecheck: $(STAMP)
	$(BIN)/mypy

# The whole suite but the fault runs; integration tests need RabbitMQ and PostgreSQL on 127.0.0.1
# (skipped with the reason on a laptop without them, a failure under CI=true).
test: lint typecheck
	$(PYTEST) -m "not chaos" -q -p no:cacheprovider

# Bounded fault runs for CI (under 30 minutes); `make chaos` runs the same suite bigger. -rP prints
# what passing fault runs printed (the seed, each run, the timings).
chaos-ci: $(STAMP)
	ALCHEMISER_CHAOS_SCALE=ci $(PYTEST) -m chaos -q -rP -p no:cacheprovider

chaos: $(STAMP)
	ALCHEMISER_CHAOS_SCALE=full $(PYTEST) -m chaos -q -rP -p no:cacheprovider

bench: $(STAMP)
	for b in benchmarks/*.py; do PYTHONPATH=. $(BIN)/python $$b || exit 1; done

# The daily burst at platform size, scaled down: 1,000 accounts on 100 strategy configs at the
# simulated 15:45, 50 ms per broker call, without and with +1 and +2 portfolio and execution
# replicas (docs/performance.md, Load at platform size). Needs RabbitMQ on 127.0.0.1 and, for
# a PostgreSQL server of its own with room for every process's connections, Debian's
# pg_createcluster run as root or postgres; each run gives up after 20 minutes and reports what
# ended; exits 1 when a run was lost, failed or doubled. About 6 minutes on 2 cores.
load: $(STAMP)
	PYTHONPATH=. $(BIN)/python benchmarks/load.py --accounts 1000 --configs 100 --broker-latency-ms 50 --replicas 0 1 2 --timeout-s 1200 --own-postgres

# Mutation testing of the pure core: the files and tests named in pyproject's [tool.mutmut], 10 to
# 15 minutes on two cores; not part of `make test` or CI. Starts from an empty mutants/
# because mutmut keeps a survivor's verdict even after the tests change.
mutation: $(STAMP)
	rm -rf mutants
	$(BIN)/mutmut run --max-children 2
	$(BIN)/python scripts/mutation_report.py

# The example report email, docs/email-example.html and .png, and the dashboard's screenshots,
# docs/dashboard-*.png (need Debian's chromium and chromedriver; not in CI).
docs: $(STAMP)
	$(BIN)/python scripts/render_example_email.py
	PYTHONPATH=. $(BIN)/python scripts/render_dashboard_screenshots.py

# Regenerates requirements.lock from what pyproject.toml resolves to today.
lock:
	rm -rf /tmp/alchemiser-lock && $(PYTHON) -m venv /tmp/alchemiser-lock
	/tmp/alchemiser-lock/bin/python -m pip install --quiet --upgrade pip
	/tmp/alchemiser-lock/bin/python -m pip install --quiet '.[dev]'
	/tmp/alchemiser-lock/bin/python -m pip freeze --exclude alchemiser > requirements.lock

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
