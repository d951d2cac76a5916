#!/usr/bin/env bash
# Fuzz every operation of the OpenAPI document with schemathesis against a real gateway (embedded engine,
# a fresh SQLite database) and fail on any server error (5xx) or a traceback in the gateway's log. Bounded:
# FUZZ_SECONDS (default 600; not finishing in time fails too) and FUZZ_EXAMPLES (default 25) cases per
# operation and phase (about 2,500 requests, some 2-3 minutes). `make fuzz` runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS="${FUZZ_SECONDS:-600}"
FUZZ_EXAMPLES="${FUZZ_EXAMPLES:-25}"
work="$(mktemp -d)"
port="$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

PM_DATABASE_URL="sqlite+aiosqlite:///$work/fuzz.db" PM_PORT="$port" PM_LOG_LEVEL=warning PM_REDIS_URL= \
  PM_ENGINES='[{"name": "local", "type": "embedded", "default": true}]' \
  .venv/bin/pm-gateway >"$work/gateway.log" 2>&1 &
gateway=$!
trap 'kill "$gateway" 2>/dev/null || true; wait "$gateway" 2>/dev/null || true; rm -rf "$work"' EXIT
# Wait for the gateway, then deploy the example: the instance and task operations get something real to find.
.venv/bin/python - "$port" <<'PY'
import sys, time, httpx
base = f"http://127.0.0.1:{sys.argv[1]}"
for _ in range(120):
    try:
        if httpx.get(base + "/health", timeout=1).status_code == 200:
            break
    except httpx.TransportError:
        time.sleep(0.5)
with open("examples/order-process.bpmn", "rb") as bpmn:
    deployed = httpx.post(base + "/api/processes/definitions", files={"file": ("order.bpmn", bpmn)}, timeout=60)
deployed.raise_for_status()
PY

status=0
timeout "$FUZZ_SECONDS" .venv/bin/schemathesis run "http://127.0.0.1:$port/openapi.json" \
  --checks not_a_server_error --max-examples "$FUZZ_EXAMPLES" --request-timeout 30 \
  --seed "${FUZZ_SEED:-11}" --report junit --report-dir "$work/report" || status=$?
if grep -q "Traceback" "$work/gateway.log"; then
  echo "fuzz: the gateway logged a traceback:"; grep -A 30 -m 3 "Traceback" "$work/gateway.log"
  status=1
fi
if [ "$status" -eq 124 ]; then
  echo "fuzz: did not finish within $FUZZ_SECONDS s (FUZZ_SECONDS); its cases were not all checked"
fi
exit "$status"
