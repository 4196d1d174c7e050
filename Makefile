# The two commands: `make dev` (set up + Dagster UI) and `make test` (set up + whole suite).
# Everything installs into .venv; runtime data goes to data/ (git-ignored).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

export DAGSTER_HOME := $(CURDIR)/.dagster_home
# Settings every Dagster process of the platform takes (KEY=VALUE lines; docker-compose reads
# the same file): exported to `dagster dev`, the tests and the benchmarks.
include deploy/platform.env
export $(shell sed -n 's/^\([A-Z_][A-Z0-9_]*\)=.*/\1/p' deploy/platform.env)
export BATCH_PLATFORM_DATA_DIR ?= $(CURDIR)/data

# The demo landscape: two weeks up to yesterday, so the latest partitions hold data.
DEMO_DAYS ?= 14
DEMO_SCALE ?= 0.5
DEMO_SEED ?= 7
DEMO_START = $(shell $(BIN)/python -c "import datetime as d; print(d.date.today() - d.timedelta(days=$(DEMO_DAYS)))")
LANDSCAPE_START = $(shell $(BIN)/python -c "import json; print(json.load(open('$(BATCH_PLATFORM_DATA_DIR)/landscape.json'))['start'])")
API_PORT ?= 8765
# pytest-xdist workers for `make test`: most tests are one busy core or waiting on a server.
TEST_WORKERS ?= 2

.PHONY: dev test setup demo-data manifest chromium lint format clean bench bench-quick

# '.[bench]' is the benchmarks' peer (dlt): `make test` runs the quick benchmarks, so setup
# installs it (about 5 s, no version of ours changes); the platform itself never imports it.
$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $@

$(DAGSTER_HOME)/dagster.yaml: deploy/dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp deploy/dagster.yaml $@

## setup: virtualenv, Dagster instance config and the dbt manifest
setup: $(INSTALLED) $(DAGSTER_HOME)/dagster.yaml manifest

manifest: $(INSTALLED)
	$(BIN)/batch-platform prepare

## demo-data: generate the demo microservice landscape unless data/ already has one
demo-data: $(INSTALLED)
	@if [ -f "$(BATCH_PLATFORM_DATA_DIR)/landscape.json" ]; then \
		echo "demo landscape present in $(BATCH_PLATFORM_DATA_DIR) (delete it to regenerate)"; \
	else \
		$(BIN)/batch-platform simulate --start $(DEMO_START) --days $(DEMO_DAYS) \
			--seed $(DEMO_SEED) --scale $(DEMO_SCALE); \
	fi

## dev: everything set up, the demo REST APIs in the background, the Dagster UI on :3000
dev: setup demo-data
	@$(BIN)/batch-platform serve-apis --port $(API_PORT) > $(DAGSTER_HOME)/serve-apis.log 2>&1 & \
	api=$$!; trap "kill $$api 2>/dev/null" EXIT INT TERM; \
	echo "demo APIs on http://127.0.0.1:$(API_PORT) (log: $(DAGSTER_HOME)/serve-apis.log)"; \
	BATCH_PLATFORM_START_DATE=$(LANDSCAPE_START) \
		$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

## test: everything set up, then lint, format check and the whole test suite
test: setup lint chromium
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup

## bench: the full benchmarks, one at a time (~35 min): benchmarks/results.json, docs/BENCHMARKS.md
bench: setup
	$(BIN)/python -m benchmarks.run

## bench-quick: the same at small sizes, three at a time (< 3 min); figures in benchmarks/work/
bench-quick: setup
	$(BIN)/python -m benchmarks.run --quick

## chromium: Debian's Chromium for the browser tests (Playwright cannot download browsers here)
chromium:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	else \
		echo "/usr/bin/chromium is missing and installing it needs root:"; \
		echo "  sudo apt-get install -y chromium"; \
		echo "without it the browser tests (tests/test_ui_browser.py) skip, and fail when CI=true"; \
	fi

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(INSTALLED)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) $(DAGSTER_HOME) dbt_project/target dbt_project/logs
