#!/usr/bin/env bash
# `make demo`: one complete, scripted email migration against a running `make dev`, printing
# every request and answer. It follows the README walkthrough:
#
#   1. creates a main account (TOTP enrolled) and a duplicate with assets and a referral code,
#      with fresh addresses on every run (create-account refuses a contact that has an owner)
#   2. POST /migrations, then reads both codes from the SES emulator's /store and the TOTP code
#      from `admin totp-code`
#   3. POST .../verify, POST .../migrate, POST .../close acknowledging every warning, with a
#      code of the duplicate's own authenticator
#   4. shows the closed duplicate (`admin show-account`) and the main account
#
# Needs `make dev` running in another terminal (API on :9000, emulators on :8000/:8005/:8006).
# Exits non-zero at the first unexpected answer.
set -euo pipefail

# shellcheck source=infra/local/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$LOCAL_ROOT"

API="http://127.0.0.1:$API_PORT"
SES_STORE="http://127.0.0.1:$SES_PORT/store"

die() {
  printf '[demo] error: %s\n' "$*" >&2
  exit 1
}
step() { if [[ -t 1 ]]; then printf '\n\033[1m== %s\033[0m\n' "$*"; else printf '\n== %s\n' "$*"; fi; }
pretty() { python3 -m json.tool 2>/dev/null || cat; }

# Any HTTP answer (even a 404) means the API is up; only a refused connection or timeout is not.
if ! curl -s -o /dev/null --max-time 5 "$API/migrations/00000000-0000-0000-0000-000000000000"; then
  die "nothing answers on $API; start the service with 'make dev' in another terminal first"
fi
if ! curl -s -o /dev/null --max-time 5 "$SES_STORE"; then
  die "the SES emulator does not answer on $SES_STORE; is 'make dev' running?"
fi

admin() { cargo run -q --bin admin -- "$@"; }
# json_field FIELD: one top-level field of the JSON document on stdin.
json_field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# call METHOD PATH [BODY]: prints the request and the pretty answer; the raw answer is left in
# $BODY and the status in $STATUS.
call() {
  local method=$1 path=$2 body=${3-} out
  printf '> %s %s   (X-Dev-Account-Id: %s)\n' "$method" "$path" "$MAIN"
  local args=(-s -X "$method" -H "X-Dev-Account-Id: $MAIN" -w '\n%{http_code}')
  if [[ -n $body ]]; then
    printf '%s\n' "$body" | pretty | sed 's/^/> /'
    args+=(-H 'Content-Type: application/json' --data-binary "$body")
  fi
  out="$(curl "${args[@]}" "$API$path")" || die "request failed: $method $path"
  STATUS="${out##*$'\n'}"
  BODY="${out%$'\n'*}"
  printf '< %s\n' "$STATUS"
  printf '%s\n' "$BODY" | pretty | sed 's/^/< /'
}
expect() {
  [[ $STATUS == "$1" ]] || die "expected HTTP $1, got $STATUS"
}

# code_for ADDRESS: the first standalone 6-digit number in the text part of the newest email to
# ADDRESS in the SES emulator (waits a little for it to arrive).
code_for() {
  local to=$1 code i
  for ((i = 0; i < 20; i++)); do
    code="$(curl -s --max-time 5 "$SES_STORE" | python3 -c '
import json, re, sys
to = sys.argv[1]
mails = [m for m in json.load(sys.stdin).get("emails", []) if to in m["destination"]["to"]]
if mails:
    found = re.search(r"\b\d{6}\b", mails[-1]["body"].get("text") or "")
    print(found.group(0) if found else "")
' "$to")" || true
    [[ -n $code ]] && {
      printf '%s\n' "$code"
      return 0
    }
    sleep 0.5
  done
  die "no email with a 6-digit code for $to in $SES_STORE"
}

run_id="$(date +%Y%m%d%H%M%S)-$RANDOM"
main_email="main.demo-$run_id@example.com"
old_email="old.demo-$run_id@example.com"

step "1. Accounts (admin create-account)"
echo "\$ admin create-account --email $main_email"
main_json="$(admin create-account --email "$main_email")" || die "admin create-account failed"
printf '%s\n' "$main_json" | pretty
echo "\$ admin create-account --email $old_email --with-assets --referral-code DEMO${run_id##*-}"
old_json="$(admin create-account --email "$old_email" --with-assets --referral-code "DEMO${run_id##*-}")" ||
  die "admin create-account failed"
printf '%s\n' "$old_json" | pretty
MAIN="$(json_field account_id <<<"$main_json")"
SECRET="$(json_field totp_secret <<<"$main_json")"
OLD="$(json_field account_id <<<"$old_json")"
OLD_SECRET="$(json_field totp_secret <<<"$old_json")"

step "2. Start the migration: codes to $old_email (new) and $main_email (current)"
call POST /migrations "{\"channel\": \"email\", \"new_contact\": \"$old_email\"}"
expect 201
ID="$(json_field migration_id <<<"$BODY")"

step "3. The three codes (SES emulator inbox, admin totp-code)"
NEW_CODE="$(code_for "$old_email")"
CURRENT_CODE="$(code_for "$main_email")"
TOTP="$(admin totp-code "$SECRET")" || die "admin totp-code failed"
echo "new contact code      $NEW_CODE   (newest email to $old_email)"
echo "current contact code  $CURRENT_CODE   (newest email to $main_email)"
echo "TOTP code             $TOTP   (admin totp-code $SECRET)"

step "4. Verify"
call POST "/migrations/$ID/verify" \
  "{\"new_contact_code\": \"$NEW_CODE\", \"current_contact_code\": \"$CURRENT_CODE\", \"totp_code\": \"$TOTP\"}"
expect 200

step "5. Migrate: eligibility checked again, warnings to acknowledge"
call POST "/migrations/$ID/migrate" '{}'
expect 200
warnings="$(python3 -c 'import json, sys; print(json.dumps([w["id"] for w in json.load(sys.stdin)["warnings"]]))' <<<"$BODY")"

step "6. Close, acknowledging every warning, with a code of the duplicate's own authenticator"
DUPLICATE_TOTP="$(admin totp-code "$OLD_SECRET")" || die "admin totp-code failed"
echo "duplicate's TOTP code $DUPLICATE_TOTP   (admin totp-code $OLD_SECRET)"
call POST "/migrations/$ID/close" \
  "{\"acknowledged_warnings\": $warnings, \"confirm\": true, \"duplicate_totp_code\": \"$DUPLICATE_TOTP\"}"
expect 200

step "7. Result"
echo "\$ admin show-account $OLD   (the duplicate: closed, referral code off, address gone)"
admin show-account "$OLD" | pretty
echo "\$ admin show-account $MAIN   (the main account: now holds $old_email)"
admin show-account "$MAIN" | pretty
call GET "/migrations/$ID"
expect 200

step "8. What the relay delivered: the security notices and the events"
# The relay (make dev) picks the outbox up from the table's stream within a second or so.
events=""
for _ in $(seq 1 50); do
  events+="$("$LOCAL_ROOT/infra/local/events.sh")"$'\n'
  grep -q "$ID/account.closed.v1" <<<"$events" && break
  sleep 0.2
done
grep "$ID" <<<"$events" || die "no event of migration $ID on the queue: is the relay running (make dev)?"
echo "security notices to $main_email and $old_email: see the SES inbox, http://127.0.0.1:$SES_PORT/"

printf '\n[demo] ok: %s moved to account %s, duplicate %s closed (migration %s)\n' \
  "$old_email" "$MAIN" "$OLD" "$ID"
