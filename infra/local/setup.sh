#!/usr/bin/env bash
# Installs everything the local stack needs, idempotently: a second run with nothing changed
# does no network access and finishes in well under a second.
#
#   - a Java runtime for DynamoDB Local        (apt, only if `java` is missing)
#   - node/npm and curl                        (apt, only if missing)
#   - Chromium and its chromedriver            (apt, Debian's packages, only if missing; the
#                                               browser tests drive them, nothing is downloaded)
#   - infra/local/node_modules                 (`npm ci`, only if missing or the lock changed)
#   - .venv/ with cargo-lambda and moto[server] (pip, only if missing or requirements changed)
set -euo pipefail

# shellcheck source=infra/local/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
INFRA_DIR="$LOCAL_ROOT/infra/local"

log() { printf '[setup] %s\n' "$*" >&2 || true; }

# apt-get needs root; use sudo when we are not root (a developer laptop), plain apt as root (CI).
APT_UPDATED=0
apt_install() {
  local sudo=()
  if [[ $EUID -ne 0 ]]; then
    command -v sudo >/dev/null || {
      log "need to install $*, but not root and no sudo; install them by hand"
      exit 1
    }
    sudo=(sudo)
  fi
  if [[ $APT_UPDATED -eq 0 ]]; then
    "${sudo[@]}" apt-get update -qq
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# sha256 of the given files, used as a "what was installed from" stamp.
fingerprint() { cat "$@" | sha256sum | cut -d' ' -f1; }

# --- system tools ----------------------------------------------------------------------------
missing=()
# DynamoDB Local 3.x needs Java 17+; Debian 12's default-jre-headless is 17.
command -v java >/dev/null || missing+=(default-jre-headless)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
command -v curl >/dev/null || missing+=(curl)
# The browser tests (tests/tests/browser.rs) drive Debian's Chromium through its chromedriver.
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
[[ -x /usr/bin/chromedriver ]] || missing+=(chromium-driver)
# `python3 -m venv` needs ensurepip, which Debian splits into python3-venv.
if ! command -v python3 >/dev/null; then
  missing+=(python3 python3-venv)
elif ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  missing+=(python3-venv)
fi
if ((${#missing[@]})); then
  apt_install "${missing[@]}"
fi

# --- npm emulators ---------------------------------------------------------------------------
# The stamp lives inside node_modules so `npm ci` (which wipes node_modules) also wipes it:
# a half-finished install is never mistaken for a good one.
npm_stamp="$INFRA_DIR/node_modules/.installed-from-lock"
npm_want="$(fingerprint "$INFRA_DIR/package-lock.json")"
if [[ ! -f $npm_stamp || "$(cat "$npm_stamp")" != "$npm_want" ]]; then
  log "npm ci in infra/local"
  # --ignore-scripts: neither package needs install scripts, and not running them keeps the
  # install from reaching anywhere but the registry.
  (cd "$INFRA_DIR" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
  echo "$npm_want" >"$npm_stamp"
fi

# --- cargo-lambda ----------------------------------------------------------------------------
venv="$LOCAL_ROOT/.venv"
pip_stamp="$venv/.installed-from-requirements"
pip_want="$(fingerprint "$INFRA_DIR/requirements.txt")"
if [[ ! -x $venv/bin/cargo-lambda || ! -f $pip_stamp || "$(cat "$pip_stamp")" != "$pip_want" ]]; then
  if [[ ! -x $venv/bin/python ]]; then
    log "creating .venv"
    python3 -m venv "$venv"
  fi
  log "pip install -r infra/local/requirements.txt"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$INFRA_DIR/requirements.txt"
  echo "$pip_want" >"$pip_stamp"
fi

log "ok: $(java -version 2>&1 | head -n1), node $(node --version), $("$venv/bin/cargo-lambda" lambda --version)"
