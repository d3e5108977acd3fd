#!/usr/bin/env bash
# Installs the system packages the test suite needs when they are missing (Debian/Ubuntu):
# PostgreSQL server binaries, Chromium and Node.js; with `venv`, only what creating a virtualenv
# needs.
set -euo pipefail

need=()
if [ "${1:-}" = "venv" ]; then
  need+=(python3-venv)  # `make run` on a machine whose python3 lacks venv/ensurepip
elif ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  need+=(postgresql)
fi
# Headless Chromium for the dashboard's end-to-end tests (driven by Playwright, never downloaded
# by it: `playwright install` is not needed).
if [ "${1:-}" != "venv" ] && [ ! -x /usr/bin/chromium ]; then
  need+=(chromium fonts-liberation)
fi
# Node.js runs the receiver docs' JavaScript verification snippet (its test skips without node).
if [ "${1:-}" != "venv" ] && ! command -v node >/dev/null 2>&1; then
  need+=(nodejs)
fi
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "installing system packages: ${need[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
