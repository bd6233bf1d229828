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
# moto server: SNS (SMS) and SSM Parameter Store.
export SNS_PORT=8006
export API_PORT=9000

# --- what the application reads -------------------------------------------------------------
export TABLE_NAME=contact-migration
export AWS_REGION=us-east-1
# Service-specific endpoint variables are honoured by the AWS SDK for Rust (aws-config), so the
# application code needs no "local mode" branch to reach the emulators.
export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:${DYNAMODB_PORT}"
export AWS_ENDPOINT_URL_SESV2="http://127.0.0.1:${SES_PORT}"
# One moto server answers both (it tells the services apart by the request signature).
export AWS_ENDPOINT_URL_SNS="http://127.0.0.1:${SNS_PORT}"
export AWS_ENDPOINT_URL_SSM="http://127.0.0.1:${SNS_PORT}"
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
  AWS_ENDPOINT_URL_SNS AWS_ENDPOINT_URL_SSM
  AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_EC2_METADATA_DISABLED
  CODE_HMAC_SECRET AUTH_MODE SENDER_EMAIL
)

# Prints `export NAME=value` lines for LOCAL_ENV_VARS (shell-quoted, so the output can be eval'd).
local_env_print() {
  local name
  for name in "${LOCAL_ENV_VARS[@]}"; do
    printf 'export %s=%q\n' "$name" "${!name}"
  done
}
