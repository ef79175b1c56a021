#!/usr/bin/env bash
# Installs the SPIFFE peers the interop tests run against Lanyard's SVIDs (test/integration/interop/peers.test.ts calls it),
# from Debian, when they are missing: Go's standard library (golang-go), Python cryptography for Debian's
# python3 (python3-cryptography, used as /usr/bin/python3: the python3 on PATH may be another build), and a
# headless JDK (javac and java). Idempotent: with everything present it only checks and exits.
set -euo pipefail

have_go() { command -v go >/dev/null 2>&1 || [ -x /usr/lib/go/bin/go ]; }
have_python_cryptography() { [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import cryptography' >/dev/null 2>&1; }
have_jdk() { command -v javac >/dev/null 2>&1 && command -v java >/dev/null 2>&1; }

missing=()
have_go || missing+=(golang-go)
have_python_cryptography || missing+=(python3-cryptography)
have_jdk || missing+=(jdk)

if [ "${#missing[@]}" -eq 0 ]; then
  echo "interop peers already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "missing ${missing[*]}: installing them needs root (apt-get install golang-go python3-cryptography default-jdk-headless)" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
packages=()
for m in "${missing[@]}"; do
  case "$m" in
    jdk) ;; # chosen below: the distribution's default JDK, else OpenJDK 17
    *) packages+=("$m") ;;
  esac
done
echo "installing with apt-get: ${missing[*]}"
$SUDO apt-get update -qq
if [ "${#packages[@]}" -gt 0 ]; then
  $SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}"
fi
if ! have_jdk; then
  if ! $SUDO apt-get install -y -qq --no-install-recommends default-jdk-headless; then
    $SUDO apt-get install -y -qq --no-install-recommends openjdk-17-jdk-headless
  fi
fi

have_go || { echo "go is still missing after apt-get" >&2; exit 1; }
have_python_cryptography || { echo "/usr/bin/python3 cannot import cryptography after apt-get" >&2; exit 1; }
have_jdk || { echo "javac/java are still missing after apt-get" >&2; exit 1; }
echo "installed: ${missing[*]}"
