# `make run` starts the gateway on the embedded engine; `make test` runs every test; `make check` runs the
# linter (ruff), the format check (ruff format --check) and the type checker (mypy) on the packages.
# `make engine-camunda7` / `engine-operaton` / `engine-flowable` build (first use) and run a real engine in
# the foreground on PM_ENGINE_PORT (default 8080); they need java 17+ and mvn.
# Both create the virtualenv and install what they need on first use; both also build the operator console's
# assets (its modules bundled by esbuild, bpmn-js, Swagger UI) from npm into gateway/console/static/vendor (needs
# node and npm at set-up only).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUM    := $(shell cksum pyproject.toml | cut -d' ' -f1)
RUNTIME := $(VENV)/.installed-run-$(SUM)
TESTING := $(VENV)/.installed-test-$(SUM)
CONSOLE_SOURCES := console/package-lock.json console/build.mjs $(wildcard gateway/console/static/js/*.js)
NODE_MODULES := console/node_modules/.installed-$(shell cksum console/package-lock.json | cut -d' ' -f1)
CONSOLE := gateway/console/static/vendor/.built-$(shell cat $(CONSOLE_SOURCES) | cksum | cut -d' ' -f1)

.PHONY: console run test check fuzz migrate verify-audit bench api-docs clean engine-camunda7 engine-operaton engine-flowable

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

# The console's npm packages (installed once per lockfile), and its modules bundled with them into the gateway's
# static files (again whenever a module changes; served offline from then on).
$(NODE_MODULES): console/package.json console/package-lock.json
	tools/system-packages.sh node=nodejs npm=npm
	cd console && npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_MODULES)

$(CONSOLE): $(NODE_MODULES) $(CONSOLE_SOURCES)
	node console/build.mjs
	touch $(CONSOLE)

console: $(CONSOLE)

run: $(RUNTIME) $(CONSOLE)
	$(BIN)/pm-gateway

# tools/test-services.sh installs (when absent) and starts PostgreSQL and Redis, and the real engines' and the
# browser tests' system packages; it keeps PM_TEST_DATABASE_URL / PM_TEST_REDIS_URL when both are set.
test: $(TESTING) $(CONSOLE)
	eval "$$(tools/test-services.sh)" && $(BIN)/python -m pytest $(PYTEST_ARGS)

# Every step runs (and reports) even when an earlier one fails; the target fails if any did.
PACKAGES := gateway adapters incidents events analytics
check: $(TESTING)
	@status=0; \
	$(BIN)/ruff check . || status=1; \
	$(BIN)/ruff format --check . || status=1; \
	$(BIN)/mypy $(PACKAGES) || status=1; \
	exit $$status

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
	rm -rf $(VENV) .pytest_cache pm-gateway.db* console/node_modules gateway/console/static/vendor
