# `make run` starts the gateway on the embedded engine; `make test` runs every test.
# `make engine-camunda7` / `engine-operaton` / `engine-flowable` build (first use) and run a real engine in
# the foreground on PM_ENGINE_PORT (default 8080); they need java 17+ and mvn.
# Both create the virtualenv and install what they need on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test migrate verify-audit bench clean engine-camunda7 engine-operaton engine-flowable

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/pm-gateway

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

migrate: $(STAMP)
	$(BIN)/pm-gateway migrate

verify-audit: $(STAMP)
	$(BIN)/pm-gateway verify-audit

bench: $(STAMP)
	$(BIN)/python -m bench.all

engine-camunda7 engine-operaton engine-flowable:
	engines/run $(@:engine-%=%)

clean:
	rm -rf $(VENV) .pytest_cache pm-gateway.db*
