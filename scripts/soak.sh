#!/usr/bin/env bash
# The full soak (RELIABILITY.md §7): a release-built collector ingesting 20 k spans/s (OTLP)
# and 50 k logs/s (native) into a local lake for 10 minutes, on loopback; it stops by itself.
# Settings: MICROMEGAS_SOAK_SECS, MICROMEGAS_SOAK_SPANS_PER_SEC, MICROMEGAS_SOAK_LOGS_PER_SEC.
set -euo pipefail
cd "$(dirname "$0")/.."
export MICROMEGAS_SOAK_SECS=${MICROMEGAS_SOAK_SECS:-600}
export MICROMEGAS_SOAK_SPANS_PER_SEC=${MICROMEGAS_SOAK_SPANS_PER_SEC:-20000}
export MICROMEGAS_SOAK_LOGS_PER_SEC=${MICROMEGAS_SOAK_LOGS_PER_SEC:-50000}
cargo test --release -p micromegas-otlp-receiver --test it soak -- --nocapture
