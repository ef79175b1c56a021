#!/usr/bin/env bash
# Installs Debian's nginx when it is missing, for the hop interop tests (test/integration/interop/nginx-hop.test.ts calls it), which run it
# as the current user with their own prefix in a temp dir: the package's system service is never started.
set -euo pipefail

if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
  echo "nginx already installed: $( (nginx -v 2>&1 || /usr/sbin/nginx -v 2>&1) | head -1)"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "nginx is missing and installing it needs root (apt-get install nginx-light or nginx)" >&2
    exit 1
  fi
fi

echo "installing nginx with apt-get (Debian package; its service is not started by this script)"
export DEBIAN_FRONTEND=noninteractive
# A policy-rc.d that exits 101 keeps dpkg from starting nginx's system service (Debian's documented switch);
# made only when the machine has none, and removed afterwards.
POLICY=/usr/sbin/policy-rc.d
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  trap '$SUDO rm -f "$POLICY"' EXIT
fi
$SUDO apt-get update -qq
if ! $SUDO apt-get install -y -qq --no-install-recommends nginx-light 2>/dev/null; then
  $SUDO apt-get install -y -qq --no-install-recommends nginx
fi
echo "installed: $(/usr/sbin/nginx -v 2>&1 | head -1)"
