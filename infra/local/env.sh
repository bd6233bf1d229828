# shellcheck shell=bash
# Local-stack environment: the values `make dev`, `make test` and the helper scripts export so
# that the functions, the admin CLI and the tests talk to the emulators instead of AWS.
#
# Source it, don't execute it:   source infra/local/env.sh
# (`make -s env` prints the same exports, for `eval "$(make -s env)"` in an interactive shell.)
#
# No `set -euo pipefail` here on purpose: this file is sourced into other shells and must not
# change their options.

LOCAL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export LOCAL_ROOT
# Pid files and logs of everything the scripts start (ignored by git and by `cargo lambda watch`).
export LOCAL_STATE_DIR="$LOCAL_ROOT/.local"

# Ports are part of the product contract (docs and tests use them), so they are fixed here.
export DYNAMODB_PORT=8000
export SES_PORT=8005
# moto server: SNS (SMS), SSM Parameter Store and KMS.
export SNS_PORT=8006
# The exchange's account facts endpoint, played by `admin serve-facts` (PRODUCT.md section 7).
export FACTS_PORT=8007
export API_PORT=9000
# `make dev` only: cargo lambda watch behind the front server on API_PORT (front/).
export WATCH_PORT=9001

# --- what the application reads -------------------------------------------------------------
export TABLE_NAME=contact-migration
export AWS_REGION=us-east-1
# Service-specific endpoint variables are honoured by the AWS SDK for Rust (aws-config), so the
# application code needs no "local mode" branch to reach the emulators.
export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:${DYNAMODB_PORT}"
export AWS_ENDPOINT_URL_SESV2="http://127.0.0.1:${SES_PORT}"
# One moto server answers SNS, SSM, KMS, EventBridge and SQS (it tells the services apart by the
# request signature).
export AWS_ENDPOINT_URL_SNS="http://127.0.0.1:${SNS_PORT}"
export AWS_ENDPOINT_URL_SSM="http://127.0.0.1:${SNS_PORT}"
export AWS_ENDPOINT_URL_KMS="http://127.0.0.1:${SNS_PORT}"
export AWS_ENDPOINT_URL_EVENTBRIDGE="http://127.0.0.1:${SNS_PORT}"
export AWS_ENDPOINT_URL_SQS="http://127.0.0.1:${SNS_PORT}"
# DynamoDB Local serves the table's stream too (the relay reads it).
export AWS_ENDPOINT_URL_DYNAMODB_STREAMS="http://127.0.0.1:${DYNAMODB_PORT}"
# The event bus the relay publishes to, and the queue a rule copies every event to (emulators.sh).
export EVENT_BUS_NAME=contact-migration
export EVENTS_QUEUE_NAME=contact-migration-events
export EVENTS_QUEUE_URL="http://127.0.0.1:${SNS_PORT}/123456789012/${EVENTS_QUEUE_NAME}"
# The KMS key TOTP secrets are sealed under; emulators.sh creates it (and its alias) in moto.
export TOTP_KEY_ID=alias/contact-migration-totp
# The emulators accept any credentials but the SDK refuses to sign without some. These are forced
# (not defaulted) so a developer's real keys or profile are never used against the local stack.
export AWS_ACCESS_KEY_ID=local
export AWS_SECRET_ACCESS_KEY=local
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_DEFAULT_PROFILE
# Keep the SDK from ever probing the EC2 instance metadata endpoint (there is no network here).
export AWS_EC2_METADATA_DISABLED=true
# Fixed, public, dev-only key (64 hex chars, so it works whether the code uses it as raw bytes or
# hex-decodes it). Never used outside the local stack.
export CODE_HMAC_SECRET=6465762d6f6e6c792d636f64652d686d61632d7365637265742d6e6f742d7573
export AUTH_MODE=dev
export SENDER_EMAIL=no-reply@example.com
# Account facts over HTTP, as in production: signed requests to the local stand-in of the
# exchange's endpoint (emulators.sh starts it). Fixed, public, dev-only signing key.
export FACTS_ADAPTER=http
export FACTS_URL="http://127.0.0.1:${FACTS_PORT}"
export FACTS_HMAC_SECRET=dev-only-facts-hmac-secret-not-used-anywhere-else

# --- tools -----------------------------------------------------------------------------------
# cargo-lambda lives in the repo-local venv; putting it on PATH is what makes `cargo lambda`
# (cargo's external-subcommand lookup) find it.
case ":$PATH:" in
*":$LOCAL_ROOT/.venv/bin:"*) ;;
*) export PATH="$LOCAL_ROOT/.venv/bin:$PATH" ;;
esac

# The variables printed by `make dev` / `make -s env`, in one place so the list cannot drift.
LOCAL_ENV_VARS=(
  TABLE_NAME AWS_REGION AWS_ENDPOINT_URL_DYNAMODB AWS_ENDPOINT_URL_SESV2
  AWS_ENDPOINT_URL_SNS AWS_ENDPOINT_URL_SSM AWS_ENDPOINT_URL_KMS AWS_ENDPOINT_URL_EVENTBRIDGE
  AWS_ENDPOINT_URL_SQS AWS_ENDPOINT_URL_DYNAMODB_STREAMS EVENT_BUS_NAME EVENTS_QUEUE_URL TOTP_KEY_ID
  AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_EC2_METADATA_DISABLED
  CODE_HMAC_SECRET AUTH_MODE SENDER_EMAIL FACTS_ADAPTER FACTS_URL FACTS_HMAC_SECRET
)

# Prints `export NAME=value` lines for LOCAL_ENV_VARS (shell-quoted, so the output can be eval'd).
local_env_print() {
  local name
  for name in "${LOCAL_ENV_VARS[@]}"; do
    printf 'export %s=%q\n' "$name" "${!name}"
  done
}

# --- what a script starts, stopped again when it ends ----------------------------------------
# Emulators already running (`make emulators-start`, a `make dev` elsewhere) are reused and left
# running: only those the script started itself (emulators_start) are stopped, together with
# the `cargo lambda watch` whose process group it recorded in LOCAL_WATCH_PID.
LOCAL_STARTED_EMULATORS=""
LOCAL_WATCH_PID=""

# Starts whichever emulators are not running yet and remembers which those were.
emulators_start() {
  LOCAL_STARTED_EMULATORS="$("$LOCAL_ROOT/infra/local/emulators.sh" start)"
}

# Stops the emulators emulators_start started (none if they were all running already).
emulators_stop_started() {
  if [[ -n $LOCAL_STARTED_EMULATORS ]]; then
    # shellcheck disable=SC2086 # one emulator name per word
    "$LOCAL_ROOT/infra/local/emulators.sh" stop $LOCAL_STARTED_EMULATORS || true
    LOCAL_STARTED_EMULATORS=""
  fi
}

# Stops the `cargo lambda watch` started with `setsid ... & LOCAL_WATCH_PID=$!`. SIGTERM makes
# cargo-lambda shut its function instances down (they run in process groups of their own); it
# runs in its own group too, so no signal is lost to it. SIGKILL after 10 s.
watch_stop() {
  if [[ -n $LOCAL_WATCH_PID ]] && kill -0 "$LOCAL_WATCH_PID" 2>/dev/null; then
    printf '[watch] stopping cargo lambda watch\n' >&2 || true
    kill -TERM -- "-$LOCAL_WATCH_PID" 2>/dev/null || true
    local i
    for ((i = 0; i < 50; i++)); do
      kill -0 "$LOCAL_WATCH_PID" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL -- "-$LOCAL_WATCH_PID" 2>/dev/null || true
  fi
  LOCAL_WATCH_PID=""
}

# Stops the relay started with `setsid ... & LOCAL_RELAY_PID=$!` (dev.sh).
relay_stop() {
  if [[ -n ${LOCAL_RELAY_PID:-} ]] && kill -0 "$LOCAL_RELAY_PID" 2>/dev/null; then
    printf '[relay] stopping the relay\n' >&2 || true
    kill -TERM -- "-$LOCAL_RELAY_PID" 2>/dev/null || true
  fi
  LOCAL_RELAY_PID=""
}

# Stops the DynamoDB Local started with `emulators.sh scratch-dynamodb PORT & LOCAL_SCRATCH_PID=$!`
# (soak.sh).
scratch_stop() {
  if [[ -n ${LOCAL_SCRATCH_PID:-} ]] && kill -0 "$LOCAL_SCRATCH_PID" 2>/dev/null; then
    kill -TERM "$LOCAL_SCRATCH_PID" 2>/dev/null || true
    wait "$LOCAL_SCRATCH_PID" 2>/dev/null || true
  fi
  LOCAL_SCRATCH_PID=""
}

# shellcheck disable=SC2317 # only reached through the traps
_local_cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # Cleanup must finish even if whoever reads our output is gone (closed terminal, `| tee`
  # killed by the same Ctrl-C): ignore SIGPIPE (inherited by emulators.sh) and errors.
  trap '' PIPE
  set +e
  watch_stop
  relay_stop
  scratch_stop
  emulators_stop_started
  exit "$rc"
}

# Installs the traps that stop what the script started, whatever way it ends. Signals become a
# normal exit, so the EXIT trap does the cleanup exactly once.
stop_on_exit() {
  trap _local_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}
