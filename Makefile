# Two commands on a fresh machine:  `make run` (service + demo fleet)  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: run serve test lint tools databases bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

## run: start the service on the embedded SQLite database with the demo fleet
run: $(STAMP)
	$(BIN)/kiosk-exporter demo

## serve: start the service alone (kiosk-heartbeat.db in this folder)
serve: $(STAMP)
	$(BIN)/kiosk-exporter serve

## tools: Prometheus, promtool, Alertmanager and amtool from Debian when missing
tools:
	@scripts/install-tools

## databases: start the local PostgreSQL and MariaDB when they do not answer (see README)
databases:
	@scripts/start-databases

## test: the whole suite (PostgreSQL and MariaDB tests skip without them, fail under CI=true)
test: $(STAMP) tools databases
	$(BIN)/ruff check exporter tests bench
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check exporter tests bench
	$(BIN)/ruff format --check exporter tests bench

## bench: throughput, scrape and status page benchmarks (prints figures; takes a few minutes)
bench: $(STAMP)
	@command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk"; exit 1; }
	$(BIN)/python bench/heartbeats.py
	$(BIN)/python bench/scrape.py
	$(BIN)/python bench/ui.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
