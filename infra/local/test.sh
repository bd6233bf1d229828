#!/usr/bin/env bash
# `make test`: installs what is missing, starts the emulators, runs `cargo test --workspace`
# with the local environment (env.sh) exported, and stops the emulators again whatever happens.
# Exits with cargo's exit code. Extra arguments go to cargo test:
#
#   infra/local/test.sh -p end-to-end -- --nocapture
#
# Emulators that were already running (`make emulators-start`, or a `make dev` in another
# terminal) are reused and left running, so a test run never pulls the rug from under them.
set -euo pipefail

# shellcheck source=infra/local/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
INFRA_DIR="$LOCAL_ROOT/infra/local"
cd "$LOCAL_ROOT"

log() { printf '[test] %s\n' "$*" >&2 || true; }

stop_on_exit

"$INFRA_DIR/setup.sh"
# template.yaml and docs/openapi.yaml, checked offline (make template-check) before any emulator.
"$LOCAL_ROOT/infra/template/check.sh"

# Starts whichever emulators are not running yet; it prints their names, and only those are
# stopped again on exit (ones already running are reused and left running).
emulators_start

log "environment:"
local_env_print | sed 's/^/  /' >&2

log "cargo test --workspace $*"
rc=0
cargo test --workspace "$@" || rc=$?
# The contract test: schemathesis, docs/openapi.yaml against the real binaries on :9000.
if ((rc == 0)); then
  log "contract test (make contract-test)"
  "$LOCAL_ROOT/infra/contract/check.sh" || rc=$?
fi
exit "$rc"
