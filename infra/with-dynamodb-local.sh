#!/usr/bin/env bash
# Runs a command with one DynamoDB Local instance for all of it: the JVM takes seconds to start,
# so `make test` starts it once and every test binary uses it (PORTICO_DYNAMODB_ENDPOINT), each
# test in a table of its own.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$here/dynamodb-local.sh" "$port" >/dev/null 2>&1 &
ddb=$!
trap 'kill "$ddb" 2>/dev/null || true; wait "$ddb" 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  kill -0 "$ddb" 2>/dev/null || { echo "DynamoDB Local did not start" >&2; exit 1; }
  sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "DynamoDB Local did not listen on $port" >&2; exit 1; }
export PORTICO_DYNAMODB_ENDPOINT="http://127.0.0.1:$port"
"$@"
