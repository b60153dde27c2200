#!/usr/bin/env bash
# Run a command with a throwaway PostgreSQL cluster on 127.0.0.1 (NEXUS_TEST_POSTGRES_URL points
# at it), stopped when the command ends. Without PostgreSQL's server binaries the command runs
# alone and the PostgreSQL tests say they were skipped, unless NEXUS_REQUIRE_POSTGRES=1.
set -euo pipefail

if [ -n "${NEXUS_TEST_POSTGRES_URL:-}" ]; then
  exec "$@"  # a database given from outside (CI, a developer's own)
fi
initdb=$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$initdb" ]; then
  echo "PostgreSQL is not installed: its tests are skipped (install it with: sudo scripts/system-deps.sh)" >&2
  exec "$@"
fi
PG_BIN=$(dirname "$initdb")
PG_DIR=$(mktemp -d /tmp/nexus-pg.XXXXXX)
run_as=()
if [ "$(id -u)" = 0 ]; then  # PostgreSQL refuses to run as root
  chown postgres "$PG_DIR"
  run_as=(runuser -u postgres --)
fi
PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${run_as[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres >/dev/null
"${run_as[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c fsync=off -c max_connections=200" start >/dev/null
trap '"${run_as[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$PG_DIR"' EXIT
export NEXUS_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:$PG_PORT/postgres"
echo "PostgreSQL for tests: $NEXUS_TEST_POSTGRES_URL"
"$@"
