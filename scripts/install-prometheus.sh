#!/usr/bin/env bash
# Installs Debian's prometheus (the server and promtool) when it is missing, for the metrics test
# (test/integration/metrics/ calls it), which runs its own Prometheus as the current user with a temp config and temp
# storage on 127.0.0.1: the package's system service is never started. Idempotent: with both binaries present it
# only checks and exits.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  echo "prometheus already installed: $(prometheus --version 2>&1 | head -1)"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "prometheus is missing and installing it needs root (apt-get install prometheus)" >&2
    exit 1
  fi
fi

echo "installing prometheus with apt-get (Debian package; its service is not started by this script)"
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
# Without recommends: the node exporter and the web console assets are not needed to scrape and query.
$SUDO apt-get install -y -qq --no-install-recommends prometheus

command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 ||
  { echo "prometheus/promtool are still missing after apt-get" >&2; exit 1; }
echo "installed: $(prometheus --version 2>&1 | head -1)"
