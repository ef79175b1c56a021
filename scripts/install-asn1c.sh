#!/usr/bin/env bash
# Installs Debian's asn1c (an ASN.1 compiler to C) and a C compiler when missing, for the test that compiles
# docs/design/agent-context.asn1 and decodes Lanyard's own extensions with it
# (test/integration/interop/agent-context-asn1.test.ts). Idempotent: with both present it only checks and exits.
set -euo pipefail

missing=()
command -v asn1c >/dev/null 2>&1 || missing+=(asn1c)
command -v cc >/dev/null 2>&1 || missing+=(gcc)
if [ "${#missing[@]}" -eq 0 ]; then
  echo "asn1c already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "missing ${missing[*]}: installing them needs root (apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
echo "installing with apt-get: ${missing[*]}"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "installed: $(asn1c -v 2>&1 | head -1)"
