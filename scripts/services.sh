#!/usr/bin/env bash
# Starts (or stops) the throw-away servers the tests use, on loopback:
#   PostgreSQL 15 on 127.0.0.1:54329 (a fresh cluster, run as an unprivileged user)
#   SeaweedFS S3 on 127.0.0.1:8333 (from the Python venv's `weed`), bucket "micromegas-test"
# Usage: scripts/services.sh start   -> prints `export ...` lines to eval
#        scripts/services.sh stop
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=${MICROMEGAS_SERVICES_DIR:-/tmp/micromegas-test-services}
VENV=${MICROMEGAS_VENV:-.venv}
PG_PORT=54329
S3_PORT=8333

pg_bin() {
  local initdb
  initdb=$(dpkg -L postgresql-15 2>/dev/null | grep 'bin/initdb$' | head -1 || true)
  [ -n "$initdb" ] || initdb=$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | head -1 || true)
  [ -n "$initdb" ] || { echo "PostgreSQL server programs not found (apt install postgresql-15)" >&2; exit 1; }
  dirname "$initdb"
}

as_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

start() {
  mkdir -p "$STATE"
  local bin; bin=$(pg_bin)
  if [ ! -f "$STATE/pg/PG_VERSION" ]; then
    rm -rf "$STATE/pg"; mkdir -p "$STATE/pg"
    [ "$(id -u)" = 0 ] && chown postgres "$STATE/pg" "$STATE"
    as_pg "$bin/initdb" -D "$STATE/pg" -U micromegas --auth=trust >"$STATE/initdb.log" 2>&1
  fi
  if ! as_pg "$bin/pg_ctl" -D "$STATE/pg" status >/dev/null 2>&1; then
    as_pg "$bin/pg_ctl" -D "$STATE/pg" -l "$STATE/pg.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $STATE/pg" start >/dev/null
  fi

  if ! curl -s -o /dev/null "http://127.0.0.1:$S3_PORT/"; then
    mkdir -p "$STATE/weed"
    nohup "$VENV/bin/weed" server -dir="$STATE/weed" -s3 -s3.port=$S3_PORT \
      -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.port=19333 -volume.port=18080 \
      -filer.port=18888 -master.volumeSizeLimitMB=64 >"$STATE/weed.log" 2>&1 &
    echo $! >"$STATE/weed.pid"
  fi
  for _ in $(seq 1 120); do
    if curl -s -o /dev/null -X PUT "http://127.0.0.1:$S3_PORT/micromegas-test"; then
      if curl -s "http://127.0.0.1:$S3_PORT/micromegas-test" | grep -q ListBucketResult; then
        break
      fi
    fi
    sleep 0.5
  done
  curl -s "http://127.0.0.1:$S3_PORT/micromegas-test" | grep -q ListBucketResult \
    || { echo "SeaweedFS S3 did not start; see $STATE/weed.log" >&2; exit 1; }
  # The bucket lists before a volume can take objects: until the master has grown one, a PUT
  # fails with 500. Wait until an object can be written.
  local probe="http://127.0.0.1:$S3_PORT/micromegas-test/.services-ready"
  for _ in $(seq 1 120); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' -X PUT --data-binary ready "$probe")" = 200 ]; then
      break
    fi
    sleep 0.5
  done
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$probe")" = 200 ] \
    || { echo "SeaweedFS S3 takes no objects; see $STATE/weed.log" >&2; exit 1; }
  curl -s -o /dev/null -X DELETE "$probe"

  echo "export MICROMEGAS_TEST_POSTGRES=postgres://micromegas@127.0.0.1:$PG_PORT/postgres"
  echo "export MICROMEGAS_TEST_S3_ENDPOINT=http://127.0.0.1:$S3_PORT"
  echo "export MICROMEGAS_TEST_S3_BUCKET=micromegas-test"
}

stop() {
  local bin; bin=$(pg_bin)
  if [ -f "$STATE/pg/PG_VERSION" ]; then
    as_pg "$bin/pg_ctl" -D "$STATE/pg" -m immediate stop >/dev/null 2>&1 || true
  fi
  if [ -f "$STATE/weed.pid" ]; then
    local pid; pid=$(cat "$STATE/weed.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$STATE/weed.pid"
  fi
  rm -rf "$STATE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
