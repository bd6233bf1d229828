#!/usr/bin/env bash
# `make bench` (after `make package` has built the arm64 zips): builds the release binaries for
# this machine, starts the emulators that are not running yet, runs the benchmark driver
# (bench/src/main.rs) and stops again only the emulators it started, whatever happens. The
# driver prints the tables and replaces the results block of BENCHMARKS.md. Extra arguments go
# to the driver:
#
#   infra/local/bench.sh --rounds 30 --concurrency 1,8
set -euo pipefail

# shellcheck source=infra/local/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
INFRA_DIR="$LOCAL_ROOT/infra/local"
cd "$LOCAL_ROOT"

log() { printf '[bench] %s\n' "$*" >&2 || true; }

stop_on_exit

"$INFRA_DIR/setup.sh"

# The five functions, the hello-world floor and the driver, all with the release profile.
log "cargo build --release (functions, hello, driver)"
cargo build --release --locked -p send-codes -p verify -p migrate -p close -p relay -p bench

emulators_start

log "running; the functions run with a Lambda-like environment, not this shell's"
target/release/bench --update BENCHMARKS.md "$@"
