#!/usr/bin/env bash
# What the whole test suite needs besides Python, made ready on this machine, for `make test` and `.ci/run`:
# PostgreSQL and Redis installed from Debian's packages when absent, configured for local access, started and
# waited for; Java 17 and Maven (the real engines under engines/), Node.js and Chromium (the console's browser
# tests). Prints the `export PM_TEST_DATABASE_URL=… PM_TEST_REDIS_URL=…` lines for the caller to eval (all other
# output goes to stderr). Idempotent: where everything runs already it only checks. When the caller has set
# both variables already, it uses those servers and sets up neither.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/system-packages.sh java=openjdk-17-jdk-headless mvn=maven node=nodejs npm=npm chromium=chromium >&2
if [ -n "${PM_TEST_DATABASE_URL:-}" ] && [ -n "${PM_TEST_REDIS_URL:-}" ]; then
  echo "export PM_TEST_DATABASE_URL='$PM_TEST_DATABASE_URL' PM_TEST_REDIS_URL='$PM_TEST_REDIS_URL'"
  exit 0
fi
PG_PASSWORD=pm-ci

# --- PostgreSQL ---------------------------------------------------------------------------------
tools/system-packages.sh postgresql >&2
pg_version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
if [ ! -d "/etc/postgresql/$pg_version/main" ]; then
  pg_createcluster "$pg_version" main >&2
fi
if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  echo "starting PostgreSQL $pg_version" >&2
  pg_ctlcluster --skip-systemctl-redirect "$pg_version" main start >&2
fi
for _ in $(seq 1 60); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
pg_isready -h 127.0.0.1 -p 5432 >&2
# Local access for the tests: a password on 127.0.0.1 (Debian's default pg_hba asks for one there).
runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -c "ALTER USER postgres PASSWORD '$PG_PASSWORD'" >&2
# The database the URL names; the tests create (and drop) databases of their own on this server.
if ! runuser -u postgres -- psql -tAq -c "SELECT 1 FROM pg_database WHERE datname = 'pm_test'" | grep -q 1; then
  runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -c 'CREATE DATABASE pm_test' >&2
fi

# --- Redis --------------------------------------------------------------------------------------
tools/system-packages.sh redis-server=redis-server >&2
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "starting Redis" >&2
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >&2
fi
for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done
redis-cli -h 127.0.0.1 -p 6379 ping >&2

echo "export PM_TEST_DATABASE_URL='postgresql+asyncpg://postgres:$PG_PASSWORD@127.0.0.1:5432/pm_test'" \
  "PM_TEST_REDIS_URL='redis://127.0.0.1:6379/15'"
