# The two front-door commands: `make run` (install + build everything) and `make test` (install + tests).
# Everything installs into .venv from requirements.lock; uv's download cache keeps repeat installs fast.
# Bytecode is compiled at install: with PYTHONDONTWRITEBYTECODE set (as on CI machines) every process would
# otherwise recompile dlt, Dagster and DuckDB's Python parts on import (about a second each time).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export RUNTIME__DLTHUB_TELEMETRY := false
# The front-door commands run the sandbox unless told otherwise; GTG_ENV has no default outside them, so a
# deployment that forgot it stops instead of falling back to the sandbox (README, "Production").
export GTG_ENV ?= sandbox

.PHONY: install postgres run test ui bench bench-privacy bench-google-ads clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.9
	$(BIN)/uv pip sync --quiet --compile-bytecode --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

run: install
	$(BIN)/python -m cli run

# The CRM app source's tests start a real PostgreSQL server (Debian's package) in a temporary folder; a fresh
# machine gets the server programs here.
postgres:
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null 2>&1 || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null)

test: install postgres
	$(BIN)/python -m pytest

ui: install
	$(BIN)/python -c "import cli; cli.ensure_dagster_home()"
	umask 077 && $(BIN)/dagster dev -h 127.0.0.1 -w workspace.yaml

bench: install
	$(BIN)/python -m bench.ingest

bench-privacy: install
	$(BIN)/python -m bench.privacy

bench-google-ads: install
	$(BIN)/python -m bench.google_ads

clean:
	rm -rf data .dagster_home
