#!/usr/bin/env bash
# `make events`: prints the domain events waiting on the local queue ($EVENTS_QUEUE_URL, where a
# rule copies every event of the bus $EVENT_BUS_NAME), one CloudEvent a line, and takes them off
# the queue. Needs the emulators (`make dev` or `make emulators-start`).
set -euo pipefail

# shellcheck source=infra/local/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

sqs() {
  curl -sS -m 10 --aws-sigv4 "aws:amz:$AWS_REGION:sqs" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
    -X POST "$AWS_ENDPOINT_URL_SQS/" \
    -H 'Content-Type: application/x-amz-json-1.0' -H "X-Amz-Target: AmazonSQS.$1" -d "$2"
}

while :; do
  answer="$(sqs ReceiveMessage "{\"QueueUrl\": \"$EVENTS_QUEUE_URL\", \"MaxNumberOfMessages\": 10}")"
  handles="$(python3 -c '
import json, sys
messages = json.loads(sys.argv[1]).get("Messages", [])
for m in messages:
    print(json.dumps(json.loads(m["Body"])["detail"]), file=sys.stderr)
    print(m["ReceiptHandle"])
' "$answer")"
  [[ -n $handles ]] || break
  while read -r handle; do
    sqs DeleteMessage "{\"QueueUrl\": \"$EVENTS_QUEUE_URL\", \"ReceiptHandle\": \"$handle\"}" >/dev/null
  done <<<"$handles"
done 2>&1
