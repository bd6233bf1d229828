# Entry points for developers and CI. The logic lives in infra/local/*.sh and infra/template/*.sh;
# see those files.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# Extra arguments for `make test`, e.g. make test TEST_ARGS='-p end-to-end -- --nocapture'
TEST_ARGS ?=
# Extra arguments for the benchmark driver, e.g. make bench BENCH_ARGS='--rounds 30'
BENCH_ARGS ?=

.PHONY: help setup dev test events emulators-start emulators-stop emulators-status env fmt lint \
	template-check package bench soak clean-local demo contract-test

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

setup: ## install the local toolchain (emulators, cargo-lambda); idempotent
	infra/local/setup.sh

dev: ## run the API on :9000 against DynamoDB Local (:8000) and the SES emulator (:8005)
	infra/local/dev.sh

test: ## cargo test --workspace against freshly started emulators
	infra/local/test.sh $(TEST_ARGS)

demo: ## with `make dev` running: one complete scripted migration, every request and answer
	infra/local/demo.sh

events: ## with `make dev` running: print the domain events on the local queue (and take them off it)
	infra/local/events.sh

contract-test: ## schemathesis against docs/openapi.yaml on :9000 (starts the API if not running)
	infra/contract/check.sh

emulators-start: setup ## start DynamoDB Local and the SES emulator in the background
	infra/local/emulators.sh start

emulators-stop: ## stop the emulators started by emulators-start
	infra/local/emulators.sh stop

emulators-status: ## are the emulators running?
	infra/local/emulators.sh status

env: ## print the local environment as exports (for eval in a shell)
	@source infra/local/env.sh && local_env_print

fmt: ## format the code
	cargo fmt --all

lint: ## what CI checks besides the tests: formatting and clippy
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

template-check: ## cfn-lint + sam validate --lint on template.yaml, docs/openapi.yaml and docs/asyncapi.yaml checks; offline
	infra/template/check.sh

# The five functions as AWS Lambda deployment packages: provided.al2023 on arm64, one
# `bootstrap` per zip. cargo-lambda cross-compiles with zig (PyPI ziglang, in .venv).
LAMBDA_FUNCTIONS := send-codes verify migrate close relay

package: setup ## release zips for Lambda (arm64): target/lambda/<function>/bootstrap.zip
	PATH="$(CURDIR)/.venv/bin:$$PATH" cargo lambda build --release --arm64 --output-format zip \
		$(addprefix -p ,$(LAMBDA_FUNCTIONS))
	@python3 -c 'import os, sys, zipfile; \
		[print(f"  {z:<40} {os.path.getsize(z):>9} bytes zipped, " \
		       f"{sum(i.file_size for i in zipfile.ZipFile(z).infolist()):>9} bytes unzipped") \
		 for z in (f"target/lambda/{f}/bootstrap.zip" for f in sys.argv[1:])]' $(LAMBDA_FUNCTIONS)

# About 25 minutes from a fresh clone on a 2-core machine, builds included; 5 once built.
bench: package ## cold start, DynamoDB requests, package size, latency, memory; updates BENCHMARKS.md
	infra/local/bench.sh $(BENCH_ARGS)

# Budgets: SOAK_SEQUENCES, SOAK_TRIALS, FUZZ_SECONDS (per fuzz target), FUZZ_TARGETS, FUZZ_SANITIZER.
soak: setup ## long runs: model/stress tests with big budgets, then each fuzz target; a summary
	infra/local/soak.sh

clean-local: emulators-stop ## stop the emulators and delete local installs, pids and logs
	rm -rf .local infra/local/node_modules .venv
