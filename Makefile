# Two commands on a fresh machine (Python 3.11, Node 20, Java 17): `make run` and `make test`.
# Every install step lives here; targets install only what is missing or out of date.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
SAM_VENV := .venv-sam
PY := $(VENV)/bin/python
PORT ?= 3000
DYNAMODB_PORT ?= 8000
SQS_PORT ?= 9324
TENANT ?= demo
SCOPES ?= ingest,read
WHICH ?= aggregation
# Deployed, the aggregator commits each shard's events every 60 s (AggregationWindowSeconds); locally
# a shorter window shows totals sooner. AGGREGATION_WINDOW=60 runs the production setting.
AGGREGATION_WINDOW ?= 5
PYTEST_WORKERS ?= 2
export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0

.PHONY: install run key redrive reconcile events load test test-fast lint openapi format bench build deploy clean help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements-dev.txt shared/requirements.txt clients/python/pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required (the Lambda runtime)"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

$(SAM_VENV)/.installed: requirements-sam.txt
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet -r requirements-sam.txt
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css functions/dashboard/static/
	@touch $@

# Debian's Chromium for the dashboard's browser tests (Playwright drives it; browser builds are not downloaded).
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
$(CHROMIUM):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

install: $(VENV)/.installed $(SAM_VENV)/.installed node_modules/.installed $(CHROMIUM) ## install everything (idempotent)

run: $(VENV)/.installed node_modules/.installed ## start DynamoDB Local, local SQS and the API on http://127.0.0.1:$(PORT)
	@command -v java >/dev/null || { echo "Java 17 is needed for DynamoDB Local"; exit 1; }
	PORT=$(PORT) DYNAMODB_PORT=$(DYNAMODB_PORT) SQS_PORT=$(SQS_PORT) $(PY) -m local --parameter AggregationWindowSeconds=$(AGGREGATION_WINDOW)

key: $(VENV)/.installed ## make key TENANT=acme SCOPES=ingest,read[,admin] (while make run is up); the token is the last line
	@$(PY) -m local.key --tenant "$(TENANT)" --scopes "$(SCOPES)"

redrive: $(VENV)/.installed ## make redrive WHICH=aggregation|ingest|alerts (while make run is up): recount or requeue dead letters
	@$(PY) -m local.key --redrive "$(WHICH)"

reconcile: $(VENV)/.installed ## (while make run is up) reconcile now what the hourly schedule would (make run also runs it on its schedule)
	@$(PY) -m local.key --reconcile

events: $(VENV)/.installed ## (while make run is up) the EventBridge events alerts put on the bus, one JSON per line
	@$(PY) -m local.key --events

test: install ## lint, then every test: unit, moto integration, end-to-end over HTTP against DynamoDB Local
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	@mkdir -p bench/results
	@echo "make bench --quick (keeps the harness from rotting; log in bench/results/quick.log)"
	@$(PY) -m bench --quick > bench/results/quick.log 2>&1 || { tail -50 bench/results/quick.log; exit 1; }
	@head -9 bench/results/quick.md
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup

load: $(VENV)/.installed ## a hot tenant for a minute against a local stack on 127.0.0.1, then aggregates = recount
	LOAD_SECONDS=$${LOAD_SECONDS:-60} $(PY) -m pytest tests/e2e/test_load.py -k hot -s -q

test-fast: $(VENV)/.installed ## unit and in-process tests only
	$(PY) -m pytest -m "not e2e" -q

lint: $(VENV)/.installed ## ruff check and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

openapi: $(VENV)/.installed ## regenerate docs/openapi.json from the code (a test fails when it is stale)
	$(PY) -m local.openapi > docs/openapi.json

format: $(VENV)/.installed ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(VENV)/.installed node_modules/.installed ## capacity, throughput, latency and cold start (SECTION=live|backfill|swarm|crowd|poison|hostile|credits|sending|coldstart for one; BENCH_ARGS=--quick for a short run)
	$(PY) -m bench $(if $(SECTION),--section $(SECTION)) $(BENCH_ARGS)

build: $(SAM_VENV)/.installed $(VENV)/.installed node_modules/.installed ## sam build, then ship bytecode (Lambda cannot write it)
	$(SAM_VENV)/bin/sam build
	$(PY) -m compileall -q --invalidation-mode unchecked-hash .aws-sam/build

deploy: build ## sam deploy --guided (uses samconfig.toml)
	$(SAM_VENV)/bin/sam deploy --guided

clean: ## remove local data (.local/) and build output
	rm -rf .local .aws-sam
