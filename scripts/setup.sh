#!/usr/bin/env bash
# Installs what Switchboard needs from Debian's packages, only when something is missing, so a second run
# is instant. Run by `make run` and `make test`; safe to run by hand.
set -euo pipefail

# Build tools, registry clients for model packages (pip, npm), real recorded speech for tests,
# espeak-ng (phonemes for the Kokoro and Piper voices, and the last-resort voice), and Chromium (the
# console's end-to-end test talks to the agent through it, with a recording as the microphone), and
# sipp (package sip-tester) and baresip, the SIP peers the SIP tests call the agent with, and
# redis-server, which the Redis fault test starts, kills and restarts on a port of its own (and the TLS
# test starts with a certificate), and openssl and curl, with which the TLS tests make certificates and
# speak to the server as an operator would; haproxy, the load balancer of scripts/fleet.sh; prometheus
# (and its promtool, which checks the shipped alert rules) and prometheus-alertmanager, which watch the
# fleet; redis-server also runs as the Sentinel of the failover test (`redis-server --sentinel`).
APT_PACKAGES=(
  build-essential pkg-config cmake libclang-dev
  python3 python3-pip npm
  asterisk-core-sounds-en-wav asterisk-core-sounds-en
  espeak-ng
  chromium
  sip-tester baresip-core
  redis-server
  openssl curl
  haproxy prometheus prometheus-alertmanager
)

say() { printf 'setup: %s\n' "$*" >&2; }

if ! command -v cargo >/dev/null 2>&1; then
  say "cargo not found: install the Rust toolchain (https://rustup.rs) and run this again"
  exit 1
fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  case "$pkg" in
    # A pip or npm from elsewhere (pyenv, nvm) serves as well as Debian's.
    python3-pip) command -v pip3 >/dev/null 2>&1 || command -v pip >/dev/null 2>&1 && continue ;;
    npm) command -v npm >/dev/null 2>&1 && continue ;;
    python3) command -v python3 >/dev/null 2>&1 && continue ;;
  esac
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  say "system packages present"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  say "missing packages: ${missing[*]}; this script installs them with apt-get (Debian/Ubuntu) only"
  exit 1
fi
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=(sudo); else
    say "missing packages: ${missing[*]}; run as root or install sudo"
    exit 1
  fi
fi
say "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
say "system packages installed"
