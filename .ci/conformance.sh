#!/usr/bin/env bash
# The official MCP conformance suite (server mode) against `genroute serve --http --no-auth` on a free
# loopback port. Scenarios that need the suite's own fixtures are listed, with reasons, in
# .ci/conformance-expected-failures.txt; any other failure (or a listed scenario that now passes) exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

NODE_BIN="$(bash .ci/node22.sh)"
export PATH="$NODE_BIN:$PATH"
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
# A catalog, a resource template and a prompt to list and complete; no provider is ever called.
cat > "$WORK/genroute.toml" <<TOML
[server]
data_dir = "$WORK/data"
local_model = false

[providers.upstream]
protocol = "openai"
base_url = "http://127.0.0.1:9/v1"

[models."gpt-5.5"]
provider = "upstream"
aliases = ["default-chat"]

[presets.summarise]
description = "Summarise a text"
template = "Summarise this: {text}"
TOML

"$PYTHON" -m mcp_server --config "$WORK/genroute.toml" serve --http --no-auth --port "$PORT" 2>"$WORK/server.log" &
SERVER_PID=$!
"$PYTHON" - "$PORT" <<'PY'
import sys, time, urllib.request
deadline = time.monotonic() + 60
while True:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/healthz", timeout=2)
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit("genroute did not answer /healthz within 60 s")
        time.sleep(0.2)
PY

{ echo "server:"; grep -v '^[[:space:]]*\(#\|$\)' .ci/conformance-expected-failures.txt | awk '{print "  - " $1}'; } \
  > "$WORK/expected-failures.yml"

status=0
(cd "$WORK" && timeout 900 conformance server --url "http://127.0.0.1:$PORT/mcp" \
  --expected-failures "$WORK/expected-failures.yml") || status=$?
if [ "$status" -ne 0 ]; then
  echo "conformance: FAILED (exit $status); genroute's log:" >&2
  tail -n 50 "$WORK/server.log" >&2
fi
exit "$status"
