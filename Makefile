# Every habit goes through here: install, run, test, lint, bench.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run services test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

# Narrate every sample through the bundled emulator on loopback: no key, no network.
run: install
	$(BIN)/narrator demo samples -o out

# Redis, PostgreSQL and an S3 server for this checkout, on free loopback ports; their URLs
# go to .services/env, where the tests find them (scripts/services.sh down stops them).
services: install
	@scripts/services.sh up

# Four workers on two cores: much of the suite waits on servers, processes and signals.
# Without the services (say no Debian packages, not root) their tests skip; under CI they fail.
test: install
	@scripts/services.sh up >/dev/null || echo "make test: going on without them" >&2
	$(BIN)/python -m pytest -q -n 4

lint: install
	$(BIN)/ruff check narrator tests
	$(BIN)/ruff format --check narrator tests
	$(BIN)/mypy

bench: install
	$(BIN)/python -m narrator.tools.bench --json bench.json

clean:
	scripts/services.sh down
	rm -rf $(VENV) out bench.json .pytest_cache .mypy_cache .ruff_cache .hypothesis
