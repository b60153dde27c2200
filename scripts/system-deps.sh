#!/usr/bin/env bash
# The programs the whole test suite needs beyond Python: Chromium (browser tests), Java and npm
# (the Nu HTML checker), PostgreSQL (tests against a real database), git (dates from git).
# Each is looked for as a program, not as a Debian package: a machine whose Node.js comes from
# NodeSource already has npm, and Debian's npm package cannot be installed beside it.
# Run as root on Debian or Ubuntu; `make test` runs it itself when it can, and `.ci/run` always does.
set -euo pipefail

has_postgres() { compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; }

missing=()
[ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] || missing+=(chromium)  # where the browser tests look
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
has_postgres || missing+=(postgresql)
command -v git >/dev/null 2>&1 || missing+=(git)
python3 -c "import ensurepip" >/dev/null 2>&1 || missing+=(python3-venv)  # `make` creates .venv
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "scripts/system-deps.sh: needs root and apt-get; install these packages yourself: ${missing[*]}" >&2
  exit 1
fi
echo "Installing ${missing[*]} (apt-get)"
export DEBIAN_FRONTEND=noninteractive
# A third-party list that cannot be fetched (an expired key, say) fails `update` as a whole;
# what is missing comes from Debian's own lists, which were fetched all the same.
apt-get update -qq || echo "scripts/system-deps.sh: apt-get update reported errors; installing from the lists it has" >&2
apt-get install -y -qq "${missing[@]}" >/dev/null
