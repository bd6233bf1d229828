#!/usr/bin/env bash
# `make template-check`: static checks of the deployment template and the API and event
# descriptions, offline and without AWS credentials:
#
#   cfn-lint template.yaml             CloudFormation/SAM schema, best practices, IAM policy syntax
#   sam validate --lint                SAM transform of template.yaml, then cfn-lint on the result
#   openapi-spec-validator docs/openapi.yaml
#   check_asyncapi.py docs/asyncapi.yaml
#                                      AsyncAPI 3.x; the messages are exactly the four event types;
#                                      each payload a valid, closed JSON Schema that accepts its
#                                      example and refuses it broken
#
# The tools are installed into the repo-local .venv/ from infra/template/requirements.txt (pinned),
# only when missing or when the requirements changed; later runs need no network.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

log() { printf '[template] %s\n' "$*" >&2 || true; }

venv="$ROOT/.venv"
requirements=(infra/local/requirements.txt infra/template/requirements.txt)
stamp="$venv/.installed-from-template-requirements"
want="$(cat "${requirements[@]}" | sha256sum | cut -d' ' -f1)"
if [[ ! -x $venv/bin/sam || ! -x $venv/bin/cfn-lint || ! -x $venv/bin/openapi-spec-validator ||
  ! -f $stamp || "$(cat "$stamp")" != "$want" ]]; then
  if [[ ! -x $venv/bin/python ]]; then
    log "creating .venv"
    python3 -m venv "$venv"
  fi
  log "pip install -r infra/template/requirements.txt"
  # Both files in one resolution, so the shared venv stays consistent with the local stack's tools.
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r infra/local/requirements.txt \
    -r infra/template/requirements.txt
  echo "$want" >"$stamp"
fi

# Neither check calls AWS; a region is still needed by the SAM translator, and dummy credentials
# keep anything from reaching for a developer's real ones. No telemetry (there is no network).
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=template-check AWS_SECRET_ACCESS_KEY=template-check
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_DEFAULT_PROFILE
export AWS_EC2_METADATA_DISABLED=true SAM_CLI_TELEMETRY=0

log "cfn-lint template.yaml"
"$venv/bin/cfn-lint" template.yaml
log "sam validate --lint"
"$venv/bin/sam" validate --lint --template template.yaml
log "openapi-spec-validator docs/openapi.yaml"
"$venv/bin/openapi-spec-validator" docs/openapi.yaml
log "check_asyncapi.py docs/asyncapi.yaml"
"$venv/bin/python" infra/template/check_asyncapi.py docs/asyncapi.yaml
log "openapi-spec-validator docs/facts-openapi.yaml"
"$venv/bin/openapi-spec-validator" docs/facts-openapi.yaml
log "ok"
