# Entry points for developers and CI. The logic lives in infra/local/*.sh; see those files.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# Extra arguments for `make test`, e.g. make test TEST_ARGS='-p end-to-end -- --nocapture'
TEST_ARGS ?=

.PHONY: help setup dev test emulators-start emulators-stop emulators-status env fmt lint clean-local

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

setup: ## install the local toolchain (emulators, cargo-lambda); idempotent
	infra/local/setup.sh

dev: ## run the API on :9000 against DynamoDB Local (:8000) and the SES emulator (:8005)
	infra/local/dev.sh

test: ## cargo test --workspace against freshly started emulators
	infra/local/test.sh $(TEST_ARGS)

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

clean-local: emulators-stop ## stop the emulators and delete local installs, pids and logs
	rm -rf .local infra/local/node_modules .venv
