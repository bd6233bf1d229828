#!/usr/bin/env bash
# `make soak`: the long runs that `make test` keeps short. Starts the emulators (as test.sh
# does: only those not already running, stopped again on exit), runs the property and stress
# tests with larger budgets, then each fuzz target for a while, and prints a summary.
#
#   SOAK_SEQUENCES  model-test sequences, read by the model tests (default 300)
#   SOAK_TRIALS     trials of the race and stress tests (default 30)
#   SOAK_ROUND      at most this many sequences and trials per round (default 100); each round
#                   runs against a DynamoDB Local of its own, on SOAK_DYNAMODB_PORT (default 8010)
#   FUZZ_SECONDS    time per fuzz target (default 300)
#   FUZZ_TARGETS    space-separated targets to run (default: every target in fuzz/)
#   FUZZ_SANITIZER  none (default) or address. `none` builds on a stable compiler as it is;
#                   `address` needs a nightly one, or RUSTC_BOOTSTRAP=1 on stable (set here)
#
# Test files: tests/tests/{model,stress}.rs when they exist, and any other test file that
# reads SOAK_* budgets; missing ones are skipped. Fuzz corpora grow in fuzz/corpus/ (seeded
# from fuzz/seeds/), crashes land in fuzz/artifacts/<target>/. Exits non-zero if a test
# failed or a fuzz target crashed.
set -euo pipefail

# shellcheck source=infra/local/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
INFRA_DIR="$LOCAL_ROOT/infra/local"
FUZZ_DIR="$LOCAL_ROOT/fuzz"
cd "$LOCAL_ROOT"

export SOAK_SEQUENCES="${SOAK_SEQUENCES:-300}"
export SOAK_TRIALS="${SOAK_TRIALS:-30}"
SOAK_ROUND="${SOAK_ROUND:-100}"
SOAK_DYNAMODB_PORT="${SOAK_DYNAMODB_PORT:-8010}"
FUZZ_SECONDS="${FUZZ_SECONDS:-300}"
FUZZ_SANITIZER="${FUZZ_SANITIZER:-none}"
# The version this was written against; `cargo install` fetches it from crates.io if missing.
CARGO_FUZZ_VERSION=0.13.2

log() { printf '[soak] %s\n' "$*" >&2 || true; }

summary=()
failed=0
stop_on_exit

# ---- property, race and stress tests ------------------------------------------------------
tests=()
for name in model stress; do
  [[ -f tests/tests/$name.rs ]] && tests+=("$name")
done
for file in tests/tests/*.rs; do
  name="$(basename "$file" .rs)"
  if grep -q 'SOAK_' "$file" && [[ " ${tests[*]} " != *" $name "* ]]; then
    tests+=("$name")
  fi
done

if ((${#tests[@]})); then
  "$INFRA_DIR/setup.sh"
  emulators_start
  args=()
  for name in "${tests[@]}"; do args+=(--test "$name"); done
  log "building ${tests[*]}"
  nice -n 10 cargo test -p end-to-end "${args[@]}" --no-run
  # In rounds of at most SOAK_ROUND sequences and trials, each against a DynamoDB Local of its
  # own: every table created with a stream slows every later write in the same DynamoDB Local
  # (it looks the stream up among all it ever had), so one emulator for the whole budget ends
  # at a crawl, dropped tables or not.
  budget=$((SOAK_SEQUENCES > SOAK_TRIALS ? SOAK_SEQUENCES : SOAK_TRIALS))
  rounds=$(((budget + SOAK_ROUND - 1) / SOAK_ROUND))
  sequences_left=$SOAK_SEQUENCES
  trials_left=$SOAK_TRIALS
  output="$(mktemp)"
  started=$SECONDS
  tests_failed=0
  for ((round = 1; round <= rounds; round++)); do
    sequences=$((sequences_left < SOAK_ROUND ? sequences_left : SOAK_ROUND))
    trials=$((trials_left < SOAK_ROUND ? trials_left : SOAK_ROUND))
    sequences_left=$((sequences_left - sequences))
    trials_left=$((trials_left - trials))
    "$INFRA_DIR/emulators.sh" scratch-dynamodb "$SOAK_DYNAMODB_PORT" &
    LOCAL_SCRATCH_PID=$!
    until curl -s -o /dev/null -m 2 "http://127.0.0.1:$SOAK_DYNAMODB_PORT/"; do
      kill -0 "$LOCAL_SCRATCH_PID" 2>/dev/null || {
        log "DynamoDB Local did not start on :$SOAK_DYNAMODB_PORT; see .local/dynamodb-$SOAK_DYNAMODB_PORT.log"
        exit 1
      }
      sleep 0.2
    done
    log "round $round of $rounds: SOAK_SEQUENCES=$sequences SOAK_TRIALS=$trials (DynamoDB Local on :$SOAK_DYNAMODB_PORT)"
    if ! SOAK_SEQUENCES=$sequences SOAK_TRIALS=$trials \
      AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$SOAK_DYNAMODB_PORT" \
      AWS_ENDPOINT_URL_DYNAMODB_STREAMS="http://127.0.0.1:$SOAK_DYNAMODB_PORT" \
      nice -n 10 cargo test -p end-to-end "${args[@]}" -- --nocapture 2>&1 | tee -a "$output"; then
      tests_failed=1
      break
    fi
    scratch_stop
  done
  scratch_stop
  # The model test prints `model: N sequences, M operations checked` at the end of each round.
  checked="$(awk '/^model: /{s += $2; o += $4} END {printf "%d sequences, %d operations", s, o}' "$output")"
  rm -f "$output"
  if ((tests_failed)); then
    summary+=("$(printf '%-22s %-10s %s' "tests" "FAILED" "${tests[*]} (round $round of $rounds)")")
    failed=1
  else
    summary+=("$(printf '%-22s %-10s %s' "tests" "passed" \
      "${tests[*]} in $((SECONDS - started)) s, $rounds rounds; model: $checked")")
  fi
  emulators_stop_started
else
  log "no model or stress tests in tests/tests/; skipped"
  summary+=("$(printf '%-22s %-10s %s' "tests" "skipped" "no model/stress test files")")
fi

# ---- fuzz targets -------------------------------------------------------------------------
if ! cargo fuzz --version >/dev/null 2>&1; then
  log "cargo install cargo-fuzz --version $CARGO_FUZZ_VERSION --locked"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi
case $FUZZ_SANITIZER in
none) ;;
address)
  # Sanitizers take `-Z` flags; on a stable compiler RUSTC_BOOTSTRAP allows them. Cargo caches
  # a failed probe of those flags in fuzz/target/.rustc_info.json regardless of this variable,
  # so a run that tried without it must not leave that behind.
  if ! rustc --version | grep -q -- -nightly; then
    export RUSTC_BOOTSTRAP=1
    rm -f "$FUZZ_DIR/target/.rustc_info.json"
  fi
  ;;
*)
  log "FUZZ_SANITIZER must be none or address, not '$FUZZ_SANITIZER'"
  exit 2
  ;;
esac

cd "$FUZZ_DIR"
read -r -a targets <<<"${FUZZ_TARGETS:-$(cargo fuzz list | tr '\n' ' ')}"
log "building ${targets[*]} (sanitizer: $FUZZ_SANITIZER)"
nice -n 10 cargo fuzz build -s "$FUZZ_SANITIZER"
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "artifacts/$target"
  seeds=()
  [[ -d seeds/$target ]] && seeds+=("seeds/$target")
  before="$(find "artifacts/$target" -type f | wc -l)"
  out="$(mktemp)"
  log "fuzzing $target for ${FUZZ_SECONDS}s"
  rc=0
  nice -n 10 cargo fuzz run -s "$FUZZ_SANITIZER" "$target" "corpus/$target" "${seeds[@]}" -- \
    -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 >"$out" 2>&1 || rc=$?
  runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out" | grep -o '[0-9]*$' | tail -n1)"
  crashes=$(($(find "artifacts/$target" -type f | wc -l) - before))
  if ((rc != 0 || crashes > 0)); then
    failed=1
    grep -E 'panicked at|ERROR: libFuzzer|Test unit written to' "$out" | head -n 5 >&2 || true
    summary+=("$(printf '%-22s %-10s runs %-12s crashes %s (exit %s; artifacts/%s)' \
      "$target" "CRASHED" "${runs:-?}" "$crashes" "$rc" "$target")")
  else
    summary+=("$(printf '%-22s %-10s runs %-12s crashes 0' "$target" "ok" "${runs:-?}")")
  fi
  rm -f "$out"
done

printf '\nsoak summary\n' >&2
printf '  %s\n' "${summary[@]}" >&2
exit "$failed"
