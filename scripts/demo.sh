#!/usr/bin/env bash
# The main job: the collector on an embedded lake (a directory and a SQLite catalog), fed by an
# app instrumented with micromegas (native blocks through the network sink) and by an app
# instrumented with the OpenTelemetry Rust SDK (OTLP/gRPC); then SQL shows what is in the lake,
# including the collector's own telemetry.
#
# Usage: scripts/demo.sh [LAKE_DIR]        (default ./micromegas-lake; ports 4317 and 4318)
#        PROFILE=debug scripts/demo.sh DIR  uses the debug binaries `cargo test` built (the
#                                           test script does this), without building
set -euo pipefail
cd "$(dirname "$0")/.."
lake=${1:-./micromegas-lake}
profile=${PROFILE:-release}
bin=target/$profile

if [ "$profile" = release ]; then
  echo "==> building (release)"
  cargo build --release --bin micromegas-collector --bin micromegas-sql \
    --example quickstart --example otel_exporter
fi

echo "==> starting micromegas-collector --lake $lake"
$bin/micromegas-collector --lake "$lake" &
collector=$!
trap 'kill "$collector" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if (exec 3<>/dev/tcp/127.0.0.1/4318) 2>/dev/null; then break; fi
  if ! kill -0 "$collector" 2>/dev/null; then
    echo "the collector exited; is another process using ports 4317/4318?" >&2
    exit 1
  fi
  sleep 0.1
done

echo "==> a native app (MicromegasLayer pipeline, network sink) sends for 2 s"
$bin/examples/quickstart --collector http://127.0.0.1:4317 2
echo "==> an OpenTelemetry app (Rust SDK, OTLP/gRPC) sends a trace, logs and metrics"
$bin/examples/otel_exporter http://127.0.0.1:4317

echo "==> stopping the collector (SIGTERM: it answers what it accepted, then exits)"
kill -TERM "$collector"
wait "$collector"
trap - EXIT

echo "==> what is in the lake"
$bin/micromegas-sql --lake "$lake" -c "
  SELECT service_name, COUNT(*) AS spans, CAST(AVG(duration_ns) AS BIGINT) AS avg_ns
    FROM spans GROUP BY service_name ORDER BY service_name;
  SELECT service_name, level, COUNT(*) AS n FROM log_entries
    GROUP BY service_name, level ORDER BY service_name, level;
  SELECT l.service_name, s.name AS logged_in_span, COUNT(*) AS logs FROM log_entries l
    JOIN spans s ON s.span_id = l.span_id AND s.trace_id = l.trace_id
    GROUP BY l.service_name, s.name ORDER BY l.service_name, s.name;
  SELECT service_name, name, COUNT(*) AS n, SUM(value) AS total FROM measures
    WHERE name IN ('orders', 'collector.rows', 'request.duration')
    GROUP BY service_name, name ORDER BY service_name, name"

echo "==> one process's spans and logs as a Perfetto trace (open it at https://ui.perfetto.dev)"
pid=$($bin/micromegas-sql --lake "$lake" --format csv \
  -c "SELECT process_id FROM processes WHERE service_name = 'quickstart' LIMIT 1" | tail -n 1)
trace_file="$(dirname "$lake")/quickstart.pftrace"
$bin/micromegas-sql --lake "$lake" export-perfetto --process "$pid" \
  --begin "$(date -u -d '-1 min' +%Y-%m-%dT%H:%M:%SZ)" -o "$trace_file"

echo
echo "Run the collector yourself: $bin/micromegas-collector --lake $lake"
echo "  (OTLP on 127.0.0.1:4317 and :4318, FlightSQL for Grafana/ADBC/pyarrow on 127.0.0.1:50051)"
echo "and query it: $bin/micromegas-sql --lake $lake"
