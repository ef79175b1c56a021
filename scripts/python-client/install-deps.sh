#!/bin/sh
# Installs what scripts/python-client/attest.py needs, from Debian's archive only (no PyPI):
#   python3-grpcio python3-grpc-tools python3-protobuf python3-cryptography python3-pkg-resources
# (grpc_tools.protoc imports pkg_resources, but Debian's python3-grpc-tools does not depend on it.)
# Idempotent: does nothing when Debian's interpreter can already import every module.
# Needs root (CI runs as root on a fresh machine). The client runs with /usr/bin/python3, not with a
# `python3` found earlier on PATH (e.g. pyenv), which would not see Debian's packages.
set -eu

PY=/usr/bin/python3
PACKAGES="python3-grpcio python3-grpc-tools python3-protobuf python3-cryptography python3-pkg-resources"
CHECK='import grpc, grpc_tools.protoc, google.protobuf, cryptography'

if [ -x "$PY" ] && "$PY" -c "$CHECK" 2>/dev/null; then
  echo "install-deps: $PY already imports grpc, grpc_tools, google.protobuf, cryptography; nothing to do"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: need root to install $PACKAGES (run as root, or install them yourself)" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-deps: apt-get not found; this script installs Debian packages: $PACKAGES" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-deps: apt-get update"
apt-get update
# python3 itself too, in case the machine has no Debian interpreter at /usr/bin/python3.
echo "install-deps: apt-get install -y --no-install-recommends python3 $PACKAGES"
apt-get install -y --no-install-recommends python3 $PACKAGES

if ! "$PY" -c "$CHECK"; then
  echo "install-deps: installed $PACKAGES but $PY still cannot import them" >&2
  exit 1
fi
echo "install-deps: done; $PY imports grpc, grpc_tools, google.protobuf, cryptography"
