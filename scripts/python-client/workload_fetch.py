#!/usr/bin/python3
"""A SPIFFE Workload API client in Python that knows only the standard proto.

Run with Debian's interpreter (/usr/bin/python3) after scripts/python-client/install-deps.sh.

    /usr/bin/python3 scripts/python-client/workload_fetch.py --socket /path/agent.sock [--count 2] [--no-header]

What it does:
  1. Compiles proto/spiffe/workload/workload.proto (the standard Workload API, no package: the service is
     /SpiffeWorkloadAPI) with grpc_tools.protoc into a temporary directory and imports it from there.
  2. Opens an insecure channel on unix:<socket> and calls FetchX509SVID with the metadata
     `workload.spiffe.io: true` (leaves it out with --no-header), then reads --count messages of the stream.
  3. For each message, writes the first SVID's chain, key and bundle as PEM into a temp dir and checks with
     OpenSSL that the chain verifies against the bundle the message carried (`openssl verify -partial_chain`
     is not used: the bundle's roots must anchor it) and that the key is the certificate's key.
  4. Prints one JSON line per message {"spiffe_id", "serial", "verified": true}; exit 0.
On a gRPC error it prints {"code": "<STATUS NAME>", "details": "..."} and exits 1; on a local error
{"error": "..."} and exits 2.
"""

import argparse
import base64
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

import grpc
import grpc_tools
from grpc_tools import protoc

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))
PROTO_FILE = "spiffe/workload/workload.proto"


class LocalError(Exception):
    pass


def compile_stubs(out_dir):
    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    rc = protoc.main(["protoc", "-I" + PROTO_DIR, "-I" + include, "--python_out=" + out_dir,
                      "--grpc_python_out=" + out_dir, os.path.join(PROTO_DIR, PROTO_FILE)])
    if rc != 0:
        raise LocalError("protoc failed on " + PROTO_FILE)
    sys.path.insert(0, out_dir)
    pb2 = importlib.import_module("spiffe.workload.workload_pb2")
    grpc_pb2 = importlib.import_module("spiffe.workload.workload_pb2_grpc")
    return pb2, grpc_pb2


def der_certs(buf):
    """Splits concatenated DER certificates (each a SEQUENCE with a definite length)."""
    out, off = [], 0
    while off < len(buf):
        if buf[off] != 0x30:
            raise LocalError("not a DER SEQUENCE at offset %d" % off)
        first = buf[off + 1]
        if first < 0x80:
            length, hdr = first, 2
        else:
            n = first & 0x7F
            length, hdr = int.from_bytes(buf[off + 2:off + 2 + n], "big"), 2 + n
        out.append(buf[off:off + hdr + length])
        off += hdr + length
    return out


def pem(label, der):
    b64 = base64.b64encode(der).decode()
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return "-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label, "\n".join(lines), label)


def openssl(*args, stdin=None):
    r = subprocess.run(["openssl"] + list(args), input=stdin, capture_output=True)
    if r.returncode != 0:
        raise LocalError("openssl %s failed: %s" % (args[0], r.stderr.decode().strip()))
    return r.stdout


def check(svid, work):
    chain = der_certs(svid.x509_svid)
    roots = der_certs(svid.bundle)
    leaf_pem = os.path.join(work, "svid.pem")
    inter_pem = os.path.join(work, "untrusted.pem")
    bundle_pem = os.path.join(work, "bundle.pem")
    with open(leaf_pem, "w") as f:
        f.write(pem("CERTIFICATE", chain[0]))
    with open(inter_pem, "w") as f:
        f.write("".join(pem("CERTIFICATE", c) for c in chain[1:]))
    with open(bundle_pem, "w") as f:
        f.write("".join(pem("CERTIFICATE", c) for c in roots))
    args = ["verify", "-x509_strict", "-CAfile", bundle_pem]
    if len(chain) > 1:
        args += ["-untrusted", inter_pem]
    openssl(*(args + [leaf_pem]))
    cert_key = openssl("x509", "-in", leaf_pem, "-noout", "-pubkey")
    key_pub = openssl("pkey", "-inform", "DER", "-pubout", stdin=svid.x509_svid_key)
    if cert_key.strip() != key_pub.strip():
        raise LocalError("the key in the response is not the SVID's key")
    serial = openssl("x509", "-in", leaf_pem, "-noout", "-serial").decode().strip().split("=", 1)[1]
    return serial.lower().lstrip("0")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", required=True)
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--no-header", action="store_true")
    ap.add_argument("--timeout", type=float, default=20.0)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="lanyard-py-workload-")
    try:
        pb2, grpc_pb2 = compile_stubs(tmp)
        channel = grpc.insecure_channel("unix:" + args.socket)
        stub = grpc_pb2.SpiffeWorkloadAPIStub(channel)
        metadata = [] if args.no_header else [("workload.spiffe.io", "true")]
        stream = stub.FetchX509SVID(pb2.X509SVIDRequest(), metadata=metadata, timeout=args.timeout)
        seen = 0
        for msg in stream:
            svid = msg.svids[0]
            serial = check(svid, tmp)
            print(json.dumps({"spiffe_id": svid.spiffe_id, "serial": serial, "verified": True}), flush=True)
            seen += 1
            if seen >= args.count:
                stream.cancel()
                break
        channel.close()
        return 0
    except grpc.RpcError as e:
        print(json.dumps({"code": e.code().name, "details": e.details()}), flush=True)
        return 1
    except LocalError as e:
        print(json.dumps({"error": str(e)}), flush=True)
        return 2
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
