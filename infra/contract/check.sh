#!/usr/bin/env bash
# `make contract-test`: schemathesis against the API on http://127.0.0.1:9000, generating
# requests (valid and invalid) from docs/openapi.yaml and checking every answer:
#
#   not_a_server_error             no 5xx
#   status_code_conformance        the status is one the operation documents
#   content_type_conformance       the Content-Type is the documented one
#   response_schema_conformance    the body matches the documented schema for that status
#
# If `make dev` is running it is tested as it is; otherwise this script starts what it needs like
# dev.sh does (the emulators that are not running, the table, `cargo lambda watch`) and stops it
# again, so it can run on its own or inside `make test`. The caller is a fresh account created
# with the admin CLI (X-Dev-Account-Id, AUTH_MODE=dev).
#
# Budget (environment): CONTRACT_MAX_EXAMPLES (per operation and phase, default 10),
# CONTRACT_MAX_TIME (seconds for the whole run, default 60), CONTRACT_SEED (default 1, so runs
# are reproducible; set it empty for a random seed). Reports (JUnit, NDJSON) go to
# .local/contract/.
#
# schemathesis is pinned in infra/contract/requirements.txt and installed into the repo-local
# .venv/ together with the other pins, only when missing or when a requirements file changed.
set -euo pipefail

# shellcheck source=infra/local/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/../local/env.sh"
cd "$LOCAL_ROOT"
INFRA_DIR="$LOCAL_ROOT/infra/local"

log() { printf '[contract] %s\n' "$*" >&2 || true; }

MAX_EXAMPLES="${CONTRACT_MAX_EXAMPLES:-10}"
MAX_TIME="${CONTRACT_MAX_TIME:-60}"
SEED="${CONTRACT_SEED-1}"
API="http://127.0.0.1:$API_PORT"
REPORT_DIR="$LOCAL_STATE_DIR/contract"

# --- schemathesis in .venv -------------------------------------------------------------------
venv="$LOCAL_ROOT/.venv"
requirements=(infra/local/requirements.txt infra/template/requirements.txt infra/contract/requirements.txt)
stamp="$venv/.installed-from-contract-requirements"
want="$(cat "${requirements[@]}" | sha256sum | cut -d' ' -f1)"
if [[ ! -x $venv/bin/schemathesis || ! -f $stamp || "$(cat "$stamp")" != "$want" ]]; then
  if [[ ! -x $venv/bin/python ]]; then
    log "creating .venv"
    python3 -m venv "$venv"
  fi
  log "pip install -r infra/contract/requirements.txt"
  # All three files in one resolution, so the shared venv stays consistent.
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${requirements[@]/#/-r}"
  "$venv/bin/pip" check >&2
  echo "$want" >"$stamp"
fi

# --- the API: reuse a running one, or start it -----------------------------------------------
stop_on_exit

api_answers() { curl -s -o /dev/null --max-time 5 "$API/migrations/00000000-0000-0000-0000-000000000000"; }

if (exec 3<>"/dev/tcp/127.0.0.1/$API_PORT") 2>/dev/null; then
  log "testing the API already running on $API"
else
  "$INFRA_DIR/setup.sh"
  emulators_start
  log "building admin and the function binaries"
  cargo build -q -p admin -p send-codes -p verify -p migrate -p close
  cargo run -q --bin admin -- create-table
  mkdir -p "$REPORT_DIR"
  log "starting cargo lambda watch on $API (log: $REPORT_DIR/watch.log)"
  # --ignore-changes: nothing this run writes may rebuild and restart the functions under it (a
  # restart loses the request in flight, which then times out).
  setsid cargo lambda watch --ignore-changes -A 127.0.0.1 -P "$API_PORT" >"$REPORT_DIR/watch.log" 2>&1 &
  LOCAL_WATCH_PID=$!
  for ((i = 0; i < 300; i++)); do
    api_answers && break
    kill -0 "$LOCAL_WATCH_PID" 2>/dev/null || {
      log "error: cargo lambda watch exited; see $REPORT_DIR/watch.log"
      exit 1
    }
    sleep 1
  done
  api_answers || {
    log "error: nothing answers on $API after 300 s; see $REPORT_DIR/watch.log"
    exit 1
  }
fi

# A fresh caller per run: its start quota is untouched. Requests for other operations use
# generated migration ids, which mostly answer 404 migration_not_found (a documented answer).
account_json="$(cargo run -q --bin admin -- create-account --email "contract.$(date +%s).$RANDOM@example.com")"
account_id="$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["account_id"])' "$account_json")"
log "caller: X-Dev-Account-Id: $account_id"

seed_args=()
[[ -n $SEED ]] && seed_args=(--seed "$SEED")
mkdir -p "$REPORT_DIR"
log "schemathesis $("$venv/bin/schemathesis" --version | awk '{print $NF}'): max $MAX_EXAMPLES examples per operation, $MAX_TIME s"
# The hooks file makes bodies that are not UTF-8 deliverable through `cargo lambda watch`
# (see infra/contract/hooks.py). One worker: the functions run one invocation at a time locally.
# Hypothesis keeps its caches under .local/ rather than creating .hypothesis/ in the tree: `make dev`
# reloads its functions when the tree changes.
HYPOTHESIS_STORAGE_DIRECTORY="$REPORT_DIR/hypothesis" \
  SCHEMATHESIS_HOOKS="$LOCAL_ROOT/infra/contract/hooks.py" "$venv/bin/schemathesis" run docs/openapi.yaml \
  --url "$API" \
  --header "X-Dev-Account-Id: $account_id" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "$MAX_EXAMPLES" --max-time "$MAX_TIME" "${seed_args[@]}" \
  --workers 1 --request-timeout 60 --generation-database none --no-color \
  --report junit,ndjson --report-dir "$REPORT_DIR"
log "ok"
