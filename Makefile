# allim: the README's two commands are `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PYTHON ?= python3
STACK := .local/dev
PYTEST_ARGS ?=

.PHONY: install lint format test test-fast up down clean demo console bench chaos docs

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

lint: install
	$(BIN)/ruff check src tests bench migrations
	$(BIN)/ruff format --check src tests bench migrations
	$(BIN)/mypy
	MYPYPATH=src:bench $(BIN)/mypy --strict bench/*.py

format: install
	$(BIN)/ruff format src tests bench migrations
	$(BIN)/ruff check --fix src tests bench migrations

test: lint
	deploy/local/test.sh $(PYTEST_ARGS)

# The inner loop: lint, and the tests that need neither Kafka nor PostgreSQL (no stack started).
test-fast: lint
	env -u ALLIM_DATABASE_URL -u ALLIM_KAFKA_BOOTSTRAP ALLIM_ENVIRONMENT=test \
	ALLIM_TRACKING_SECRET=test-tracking-secret-0123456789 $(BIN)/pytest -m "not integration" $(PYTEST_ARGS)

up: install
	deploy/local/stack.sh up $(STACK)
	set -a && . $(STACK)/stack.env && set +a && $(BIN)/allim migrate && $(BIN)/allim topics

down:
	deploy/local/stack.sh down $(STACK)

# The demo's ALLIM_TRACKING_SECRET is a local one; production sets its own.
demo: up
	set -a && . $(STACK)/stack.env && set +a && \
	ALLIM_TRACKING_SECRET=$${ALLIM_TRACKING_SECRET:-local-demo-tracking-secret} \
	ALLIM_DEMO_LOGS=$(STACK)/logs $(BIN)/allim demo $(DEMO_ARGS)

# The operator console on the demo's stack: the sandbox, gateway, broadcaster and analytics
# until Ctrl-C, with its address and fresh passwords for the demo's people printed.
STACK_ENV := set -a && . $(STACK)/stack.env && set +a
console: up
	$(STACK_ENV) && ALLIM_TRACKING_SECRET=$${ALLIM_TRACKING_SECRET:-local-demo-tracking-secret} \
	ALLIM_DEMO_LOGS=$(STACK)/logs $(BIN)/allim console $(CONSOLE_ARGS)

clean:
	deploy/local/stack.sh drop $(STACK)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

docs: install
	$(BIN)/allim settings --write-readme README.md

# Benchmarks and failure scenarios run against their own data stack under .local/bench.
BENCH_STACK := .local/bench
BENCH_ENV = set -a && . $(BENCH_STACK)/stack.env && set +a && export ALLIM_BENCH_STATE=$(BENCH_STACK) \
	&& $(BIN)/allim migrate

# Each stops the stack once done, passed or failed, and exits with the run's status.
BENCH_DOWN = status=$$?; deploy/local/stack.sh down $(BENCH_STACK); exit $$status

bench: install
	deploy/local/stack.sh up $(BENCH_STACK)
	$(BENCH_ENV) && $(BIN)/python bench/run.py $(if $(QUICK),--quick) --command "make bench$(if $(QUICK), QUICK=1)"; $(BENCH_DOWN)

chaos: install
	deploy/local/stack.sh up $(BENCH_STACK)
	$(BENCH_ENV) && $(BIN)/python bench/chaos.py $(if $(QUICK),--quick) --command "make chaos$(if $(QUICK), QUICK=1)"; $(BENCH_DOWN)
