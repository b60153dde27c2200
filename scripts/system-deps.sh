#!/usr/bin/env bash
# The Debian packages the whole test suite needs beyond Python: Chromium (browser tests), Java and
# npm (the Nu HTML checker), PostgreSQL (tests against a shared database), git (dates from git).
# Run as root on Debian or Ubuntu; `make test` runs it itself when it can, and `.ci/run` always does.
set -euo pipefail

PACKAGES=(chromium chromium-driver default-jre-headless nodejs npm postgresql git python3-venv)

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "scripts/system-deps.sh: needs root and apt-get; install these packages yourself: ${PACKAGES[*]}" >&2
  exit 1
fi
missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "Installing ${missing[*]} (apt-get)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
