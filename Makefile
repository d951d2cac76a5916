# `make run` starts the gateway on the embedded engine; `make test` runs every test.
# `make engine-camunda7` / `engine-operaton` / `engine-flowable` build (first use) and run a real engine in
# the foreground on PM_ENGINE_PORT (default 8080); they need java 17+ and mvn.
# Both create the virtualenv and install what they need on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUM    := $(shell cksum pyproject.toml | cut -d' ' -f1)
RUNTIME := $(VENV)/.installed-run-$(SUM)
TESTING := $(VENV)/.installed-test-$(SUM)

.PHONY: run test fuzz migrate verify-audit bench api-docs clean engine-camunda7 engine-operaton engine-flowable

# `make run` installs only what running needs; `make test` adds the test extras.
$(RUNTIME): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	rm -f $(VENV)/.installed-run-*
	touch $(RUNTIME)

$(TESTING): $(RUNTIME)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-test-*
	touch $(TESTING)

run: $(RUNTIME)
	$(BIN)/pm-gateway

test: $(TESTING)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

fuzz: $(TESTING)
	tools/fuzz.sh

migrate: $(RUNTIME)
	$(BIN)/pm-gateway migrate

verify-audit: $(RUNTIME)
	$(BIN)/pm-gateway verify-audit

bench: $(TESTING)
	$(BIN)/python -m bench.all

api-docs: $(RUNTIME)
	$(BIN)/python -m tools.api_docs

engine-camunda7 engine-operaton engine-flowable:
	engines/run $(@:engine-%=%)

clean:
	rm -rf $(VENV) .pytest_cache pm-gateway.db*
