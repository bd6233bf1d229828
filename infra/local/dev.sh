#!/usr/bin/env bash
# `make dev`: the whole service on this machine, no AWS account and no Docker.
#
#   1. installs what is missing (setup.sh)
#   2. starts DynamoDB Local (:8000), the SES v2 emulator (:8005, inbox at http://127.0.0.1:8005/),
#      moto for SNS/SSM (:8006, sent SMS at http://127.0.0.1:8006/moto-api/data.json) and the
#      stand-in of the exchange's account facts endpoint (:8007, `admin serve-facts`), which the
#      functions read through the signed `http` facts adapter
#   3. creates the table and seeds demo accounts with the admin CLI
#   4. runs the relay (`admin relay`): the relay function's handler fed from DynamoDB Local's
#      stream, delivering the outbox (security notices to the inboxes, domain events to the bus
#      on moto, copied to the SQS queue $EVENTS_QUEUE_NAME)
#   5. serves the API with `cargo lambda watch` on an internal port ($WATCH_PORT), which routes
#      the production paths to the four function binaries (router table: Cargo.toml,
#      [workspace.metadata.lambda.watch.router]) and rebuilds them when the code changes
#   6. serves http://127.0.0.1:9000 with the front server (front/): the web front end (web/)
#      and the API's paths, forwarded to cargo lambda watch, on one origin, as CloudFront
#      serves them in production
#
# Ctrl-C (or SIGTERM) stops everything this script started. Emulators that were already running
# (`make emulators-start`) are reused and left running.
set -euo pipefail

# shellcheck source=infra/local/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
INFRA_DIR="$LOCAL_ROOT/infra/local"
cd "$LOCAL_ROOT"

log() { printf '[dev] %s\n' "$*" >&2 || true; }

stop_on_exit

"$INFRA_DIR/setup.sh"

# Fail early and clearly if the API port is taken (e.g. another `make dev`), before spending
# minutes compiling.
for port in "$API_PORT" "$WATCH_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    log "error: port $port is already in use; is another 'make dev' running?"
    exit 1
  fi
done

# Starts whichever emulators are not running yet; it prints their names, and only those are
# stopped again on exit (ones already running are reused and left running).
emulators_start

# Build the functions together with the admin CLI: one cargo invocation shares the dependency
# build, and `cargo lambda watch` then starts each function without a first-request compile.
log "building admin and the function binaries"
cargo build -q -p admin -p send-codes -p verify -p migrate -p close -p front

bin_dir="$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug"

log "creating table $TABLE_NAME"
"$bin_dir/admin" create-table

# The relay: what the Lambda event source mapping does in AWS, with the relay function's handler.
log "starting the relay (log: $LOCAL_STATE_DIR/relay.log)"
setsid "$bin_dir/admin" relay >"$LOCAL_STATE_DIR/relay.log" 2>&1 &
LOCAL_RELAY_PID=$!

# Prints the `{"account_id": ..., "totp_secret": ...}` line of create-account as a readable row;
# falls back to the raw output so an interface change is visible instead of fatal.
seed_account() {
  local description=$1 email=$2 out
  shift 2
  # Emulators reused from an earlier run still hold the demo accounts: say so and go on.
  if ! out="$(cargo run -q --bin admin -- create-account --email "$email" "$@" 2>&1)"; then
    printf '  %-22s %s
      already seeded in this table (ids and secrets were printed when it was)
' \
      "$email" "$description"
    return 0
  fi
  python3 - "$description" "$email" "$out" <<'PY' || printf '  %-22s %s\n      %s\n' "$email" "$description" "$out"
import json, sys
from urllib.parse import quote
description, email, out = sys.argv[1:4]
account = json.loads(out.strip().splitlines()[-1])
print(f"  {email:<22} {description}")
print(f"      account_id  {account['account_id']}")
secret = account.get("totp_secret")
print(f"      totp_secret {secret}")
if secret:
    # Authenticator apps import this URI (or a QR code of it, e.g. `qrencode -t ansiutf8 URI`).
    label = quote(f"ContactMigration:{email}", safe=":@")
    print(f"      otpauth     otpauth://totp/{label}?secret={secret}&issuer=ContactMigration")
PY
}

echo
echo "Demo accounts (add a totp_secret to an authenticator app to get codes):"
seed_account "main account, TOTP enrolled" alice@example.com
seed_account "duplicate with assets, referral code ALICEOLD" alice.old@example.com \
  --with-assets --referral-code ALICEOLD
seed_account "KYC'd duplicate" kyc.dup@example.com --kyc
seed_account "duplicate with a withdrawal in flight" busy.dup@example.com --pending-withdrawal

echo
echo "Environment (exported to the functions; 'eval \"\$(make -s env)\"' sets it in a shell):"
local_env_print | sed 's/^/  /'

# The route table comes straight from Cargo.toml so this listing cannot drift from what
# `cargo lambda watch` actually serves.
echo
echo "Web front end: http://127.0.0.1:$API_PORT/   (sign in with a demo account's account_id)"
echo "API on http://127.0.0.1:$API_PORT:"
cargo metadata --no-deps --format-version 1 | python3 -c "$(
  cat <<'PY'
import json, sys
router = json.load(sys.stdin)["metadata"]["lambda"]["watch"]["router"]
for path, routes in router.items():
    if isinstance(routes, str):
        routes = [{"method": "ANY", "function": routes}]
    for route in routes:
        print("  %-7s %-28s -> %s" % (route["method"], path, route["function"]))
PY
)" || log "warning: could not read the router table from Cargo.toml"
echo
echo "SES inbox: http://127.0.0.1:$SES_PORT/   (JSON: GET http://127.0.0.1:$SES_PORT/store)"
echo "SMS sent:  GET http://127.0.0.1:$SNS_PORT/moto-api/data.json   (JSON, under .sns.SMS)"
echo "Events:    SQS queue $EVENTS_QUEUE_URL"
echo "           (copied from the bus $EVENT_BUS_NAME; read them with: make events)"
echo "Account facts: the exchange's endpoint stand-in on $FACTS_URL (signed; FACTS_ADAPTER=$FACTS_ADAPTER)"
echo "           change them with: cargo run -q --bin admin -- set-facts ID --kyc | --pending-withdrawal | ..."
echo
cat <<WALKTHROUGH
Try it, in another terminal at the repository root, once the API answers:
  make demo      # a complete migration with fresh accounts, every request and answer printed
or by hand (the whole walkthrough, with code and TOTP lookup, is in README.md):
  eval "\$(make -s env)"; API=http://127.0.0.1:$API_PORT
  MAIN=\$(cargo run -q --bin admin -- create-account --email me.\$RANDOM@example.com | jq -r .account_id)
  curl -s --json '{"channel": "email", "new_contact": "alice.old@example.com"}' -H "X-Dev-Account-Id: \$MAIN" \$API/migrations
WALKTHROUGH
echo "Ctrl-C stops everything."
echo

# -A/-P: bind to loopback only (the default is '::', all interfaces).
# The functions inherit this script's environment (env.sh), so no --env-var flags are needed.
# setsid gives watch, the front server and their children one process group of their own,
# which stop_on_exit (env.sh) stops.
front_bin="$bin_dir/front"
setsid bash -c '
  cargo lambda watch -A 127.0.0.1 -P "$WATCH_PORT" &
  exec "$0" --listen "127.0.0.1:$API_PORT" --api "http://127.0.0.1:$WATCH_PORT"
' "$front_bin" &
LOCAL_WATCH_PID=$!
# `wait` (rather than a foreground child) lets the INT/TERM traps run as soon as a signal arrives.
wait "$LOCAL_WATCH_PID"
