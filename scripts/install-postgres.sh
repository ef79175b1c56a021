#!/usr/bin/env bash
# Installs Debian's PostgreSQL server binaries when they are missing, for the tests of the PostgreSQL store and of
# several servers on one database (test/support/postgres-cluster.ts calls it). The tests run their own throwaway
# cluster (initdb in a temp dir, Unix socket only): the package's system service is never started, and a cluster
# the package may create is left alone. Idempotent: with initdb and postgres present it only checks and exits.
set -euo pipefail

find_bindir() {
  local d
  # Debian keeps each major version under /usr/lib/postgresql/<major>/bin; take the newest.
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/postgres" ] && [ -x "$d/pg_ctl" ]; then
      echo "$d"
      return 0
    fi
  done
  return 1
}

if bindir="$(find_bindir)"; then
  echo "postgresql already installed: $("$bindir/postgres" --version)"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "postgresql is missing and installing it needs root (apt-get install postgresql)" >&2
    exit 1
  fi
fi

echo "installing postgresql with apt-get (Debian package; its service is not started by this script)"
export DEBIAN_FRONTEND=noninteractive
# A policy-rc.d that exits 101 keeps dpkg from starting the package's service (Debian's documented switch); made
# only when the machine has none, and removed afterwards.
POLICY=/usr/sbin/policy-rc.d
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  trap '$SUDO rm -f "$POLICY"' EXIT
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends postgresql

bindir="$(find_bindir)" || { echo "initdb/postgres/pg_ctl are still missing after apt-get" >&2; exit 1; }
echo "installed: $("$bindir/postgres" --version)"
