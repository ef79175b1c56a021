#!/usr/bin/python3
"""An independent Lanyard client in Python: attest with a join token, using only the .proto files.

Run it with Debian's interpreter (/usr/bin/python3) after scripts/python-client/install-deps.sh, which
installs python3-grpcio, python3-grpc-tools, python3-protobuf and python3-cryptography from Debian.

    /usr/bin/python3 scripts/python-client/attest.py --server 127.0.0.1:8081 \
        --bundle bundle.pem --token lanyard_jt_... --out ./svid [--spiffe-id spiffe://...]

What it does:
  1. Compiles proto/lanyard/v1/{attestation,types}.proto with grpc_tools.protoc into a temporary
     directory and imports the generated modules from there (nothing generated is kept, nothing from the
     Node side is used).
  2. Generates an EC P-256 key and a PKCS#10 CSR (DER) for it (python3-cryptography).
  3. Opens a TLS channel that trusts only the bundle (--bundle, PEM roots) and accepts only a server whose
     certificate carries the SPIFFE ID spiffe://<trust domain>/lanyard/server (see `open_channel`); the
     trust domain is read from the bundle's roots unless --trust-domain is given.
  4. Runs AttestationService.Attest (a bidi stream): sends AttestParams{attestor_type "join_token",
     evidence = the token, csr[, spiffe_id]}, half-closes, reads the AttestResult.
  5. Checks that the leaf certifies the key it generated and names the SPIFFE ID the result names, writes
     svid.pem (chain, leaf first), svid_key.pem (PKCS#8, 0600) and bundle.pem (the result's bundle) into
     --out, and prints one JSON line {"spiffe_id", "entry_id", "serial", "not_after"}; exit 0.
On a gRPC error it prints {"code": "<STATUS NAME>", "code_number": n, "details": "..."} and exits 1; on a
usage or local error it prints {"error": "..."} and exits 2.

Certificates are read with the small DER walker below, not with cryptography.x509: Lanyard SVIDs carry
the agent-context extension under a UUID OID (2.25.<128-bit integer>), and cryptography >= 38 (Debian 12
has 38) refuses to parse any certificate with an OID arc above 63 bits ("error parsing asn1 value:
ParseError { kind: InvalidValue, ... Extension::extn_id }"). OpenSSL itself (the TLS stack) is fine.
"""

import argparse
import base64
import datetime
import importlib
import json
import os
import re
import shutil
import sys
import tempfile

import grpc
import grpc_tools
from grpc_tools import protoc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PROTO_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))
# Only what Attest needs: attestation.proto and what it imports.
PROTO_FILES = ["lanyard/v1/attestation.proto", "lanyard/v1/types.proto"]


class LocalError(Exception):
    """Anything that went wrong on this side of the wire."""


# ---------------------------------------------------------------------------------------------------
# Stubs from the .proto files


def compile_protos(proto_dir, out_dir):
    """protoc --python_out --grpc_python_out; the well-known types (timestamp.proto) come with grpc_tools."""
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    for f in PROTO_FILES:
        if not os.path.isfile(os.path.join(proto_dir, f)):
            raise LocalError("missing %s in %s" % (f, proto_dir))
    args = [
        "grpc_tools.protoc",
        "-I" + proto_dir,
        "-I" + well_known,
        "--python_out=" + out_dir,
        "--grpc_python_out=" + out_dir,
    ] + PROTO_FILES
    rc = protoc.main(args)
    if rc != 0:
        raise LocalError("grpc_tools.protoc failed with exit code %d" % rc)
    # The generated modules import each other as `lanyard.v1.<name>_pb2`: make those packages.
    for pkg in (os.path.join(out_dir, "lanyard"), os.path.join(out_dir, "lanyard", "v1")):
        open(os.path.join(pkg, "__init__.py"), "a").close()
    sys.path.insert(0, out_dir)
    try:
        pb2 = importlib.import_module("lanyard.v1.attestation_pb2")
        pb2_grpc = importlib.import_module("lanyard.v1.attestation_pb2_grpc")
    finally:
        sys.path.remove(out_dir)
    return pb2, pb2_grpc


# ---------------------------------------------------------------------------------------------------
# DER and PEM, just enough for X.509 certificates


def der_tlv(buf, pos):
    """(tag, content_start, content_end) of the DER element at `pos`."""
    if pos + 2 > len(buf):
        raise LocalError("truncated DER")
    tag = buf[pos]
    length = buf[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4 or pos + n > len(buf):
            raise LocalError("bad DER length")
        length = int.from_bytes(buf[pos : pos + n], "big")
        pos += n
    if pos + length > len(buf):
        raise LocalError("truncated DER")
    return tag, pos, pos + length


def der_children(buf, start, end):
    """Every (tag, content_start, content_end, element_start) directly inside [start, end)."""
    out = []
    pos = start
    while pos < end:
        tag, cs, ce = der_tlv(buf, pos)
        out.append((tag, cs, ce, pos))
        pos = ce
    return out


def der_time(tag, raw):
    text = raw.decode("ascii")
    if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ (RFC 5280: 50-99 = 19xx)
        year = int(text[0:2])
        text = ("19" if year >= 50 else "20") + text
    elif tag != 0x18:  # GeneralizedTime YYYYMMDDHHMMSSZ
        raise LocalError("validity is not a time")
    when = datetime.datetime.strptime(text, "%Y%m%d%H%M%SZ")
    return when.replace(tzinfo=datetime.timezone.utc)


OID_SAN = bytes([0x55, 0x1D, 0x11])  # 2.5.29.17


def parse_certificate(der):
    """serial (hex), not_after (datetime), spki (DER bytes), uris (URI SANs) of an X.509 certificate."""
    tag, cs, ce = der_tlv(der, 0)
    if tag != 0x30 or ce != len(der):
        raise LocalError("not a DER certificate")
    tbs_tag, tbs_s, tbs_e = der_tlv(der, cs)
    if tbs_tag != 0x30:
        raise LocalError("no tbsCertificate")
    fields = der_children(der, tbs_s, tbs_e)
    if fields and fields[0][0] == 0xA0:  # [0] version
        fields = fields[1:]
    if len(fields) < 6 or fields[0][0] != 0x02:
        raise LocalError("malformed tbsCertificate")
    serial = int.from_bytes(der[fields[0][1] : fields[0][2]], "big", signed=True)
    validity = der_children(der, fields[3][1], fields[3][2])
    if len(validity) != 2:
        raise LocalError("malformed validity")
    not_after = der_time(validity[1][0], der[validity[1][1] : validity[1][2]])
    spki = der[fields[5][3] : fields[5][2]]
    uris = []
    for f in fields[6:]:
        if f[0] != 0xA3:  # [3] extensions
            continue
        _, xs, xe = der_tlv(der, f[1])
        for _, es, ee, _ in der_children(der, xs, xe):
            parts = der_children(der, es, ee)
            if der[parts[0][1] : parts[0][2]] != OID_SAN:
                continue
            value = der[parts[-1][1] : parts[-1][2]]  # extnValue OCTET STRING holds GeneralNames
            _, gs, ge = der_tlv(value, 0)
            for gtag, ns, ne, _ in der_children(value, gs, ge):
                if gtag == 0x86:  # [6] uniformResourceIdentifier
                    uris.append(value[ns:ne].decode("ascii"))
    serial_hex = format(serial, "x")
    if len(serial_hex) % 2:
        serial_hex = "0" + serial_hex  # whole bytes, as OpenSSL and Node print it
    return {"serial": serial_hex, "not_after": not_after, "spki": spki, "uris": uris}


PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----")


def pem_certificates(pem):
    return [base64.b64decode(b"".join(m.group(1).split())) for m in PEM_CERT.finditer(pem)]


def to_pem(der):
    b64 = base64.b64encode(der).decode("ascii")
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return ("-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n").encode()


def trust_domain_of_bundle(bundle_pem):
    """The trust domain the bundle's roots name in their URI SAN (spiffe://<td>); None when none does."""
    roots = pem_certificates(bundle_pem)
    if not roots:
        raise LocalError("the bundle file holds no PEM certificate")
    for der in roots:
        for uri in parse_certificate(der)["uris"]:
            if uri.startswith("spiffe://"):
                return uri[len("spiffe://") :].split("/", 1)[0]
    return None


# ---------------------------------------------------------------------------------------------------
# Key, CSR, channel, call


def new_key_and_csr():
    key = ec.generate_private_key(ec.SECP256R1())
    # The server ignores subject and SANs; the CSR only proves possession of the key.
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(key, hashes.SHA256())
    return key, csr.public_bytes(serialization.Encoding.DER)


def open_channel(server, bundle_pem, expected_name):
    """TLS that trusts only the bundle and accepts only a server certificate that names `expected_name`.

    The server's certificate is an X.509-SVID whose only SAN is the URI spiffe://<td>/lanyard/server; it
    has no DNS name, and grpc-python (1.51 in Debian 12) offers no hook for a custom peer check. What it
    does offer: `grpc.ssl_target_name_override` names the peer expected at the end of the handshake, and
    gRPC core (tsi_ssl_peer_matches_name) compares that name with every subjectAltName entry of the
    verified certificate, URI SANs included: an exact, case-insensitive match passes. The name is first
    split as host:port, so the SPIFFE ID goes in brackets ("[spiffe://...]", the IPv6-literal form) to
    keep "spiffe" from being taken for a host and the rest for a port. The handshake therefore fails
    unless the certificate chains to a bundle root AND carries that SPIFFE ID. (gRPC also sends that text
    as SNI; the server ignores SNI.)

    `grpc.default_authority` sets the HTTP/2 :authority, which would otherwise be the override: a "/" is
    not allowed in an authority (the server resets the stream). gRPC's per-call host check accepts the
    call because its host equals the channel's authority.
    """
    creds = grpc.ssl_channel_credentials(root_certificates=bundle_pem)
    options = [
        ("grpc.ssl_target_name_override", expected_name),
        ("grpc.default_authority", "lanyard-server"),
    ]
    return grpc.secure_channel(server, creds, options=options)


def attest(pb2, pb2_grpc, channel, token, csr_der, spiffe_id, timeout):
    stub = pb2_grpc.AttestationServiceStub(channel)
    params = pb2.AttestParams(
        attestor_type="join_token",
        evidence=token.encode("utf-8"),
        csr=csr_der,
        spiffe_id=spiffe_id or "",
    )
    # join_token needs no challenge: one request, then half-close (the iterator ends).
    responses = stub.Attest(iter([pb2.AttestRequest(params=params)]), timeout=timeout)
    result = None
    for response in responses:
        step = response.WhichOneof("step")
        if step == "result":
            result = response.result
        elif step == "challenge":
            raise LocalError("the server sent a challenge; join_token attestation has none")
    if result is None:
        raise LocalError("the Attest stream ended without a result")
    return result


def write_file(path, data, mode):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
    finally:
        os.close(fd)


def save(result, key, out_dir):
    """Checks the result against our key and writes the files; returns the summary to print."""
    svid = result.svid
    if len(svid.cert_chain) == 0:
        raise LocalError("the result holds no certificate")
    leaf = parse_certificate(svid.cert_chain[0])
    mine = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if leaf["spki"] != mine:
        raise LocalError("the issued leaf does not certify the key of the CSR")
    if leaf["uris"] != [svid.spiffe_id]:
        raise LocalError("leaf URI SANs %r do not match spiffe_id %r" % (leaf["uris"], svid.spiffe_id))
    if len(result.bundle.x509_authorities) == 0:
        raise LocalError("the result holds no bundle")

    os.makedirs(out_dir, exist_ok=True)
    write_file(os.path.join(out_dir, "svid.pem"), b"".join(to_pem(d) for d in svid.cert_chain), 0o644)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_file(os.path.join(out_dir, "svid_key.pem"), key_pem, 0o600)
    bundle_pem = b"".join(to_pem(d) for d in result.bundle.x509_authorities)
    write_file(os.path.join(out_dir, "bundle.pem"), bundle_pem, 0o644)
    return {
        "spiffe_id": svid.spiffe_id,
        "entry_id": svid.entry_id,
        "serial": leaf["serial"],
        "not_after": leaf["not_after"].isoformat().replace("+00:00", "Z"),
    }


def main():
    ap = argparse.ArgumentParser(description="Attest with a Lanyard join token over gRPC (Python client).")
    ap.add_argument("--server", required=True, help="host:port of the TLS listener")
    ap.add_argument("--bundle", required=True, help="trust bundle, PEM roots (lanyard bundle show --format pem)")
    ap.add_argument("--token", required=True, help="join token from `lanyard token create`")
    ap.add_argument("--spiffe-id", default="", help="SPIFFE ID to ask for when several entries match")
    ap.add_argument("--out", required=True, help="directory for svid.pem, svid_key.pem, bundle.pem")
    ap.add_argument("--trust-domain", default="", help="server trust domain (default: read from the bundle)")
    ap.add_argument(
        "--server-name",
        default="",
        help="name the server certificate must carry (default: [spiffe://<trust domain>/lanyard/server]; "
        "a DNS name works too if the server certificate has one)",
    )
    ap.add_argument("--proto-dir", default=DEFAULT_PROTO_DIR, help="root of the .proto files")
    ap.add_argument("--timeout", type=float, default=30.0, help="deadline of the call, seconds")
    args = ap.parse_args()

    channel = None
    try:
        with open(args.bundle, "rb") as f:
            bundle_pem = f.read()
        trust_domain = args.trust_domain or trust_domain_of_bundle(bundle_pem)
        if not trust_domain:
            raise LocalError("the bundle names no SPIFFE trust domain; pass --trust-domain")
        gen_dir = tempfile.mkdtemp(prefix="lanyard-pyproto-")
        try:
            pb2, pb2_grpc = compile_protos(args.proto_dir, gen_dir)
        finally:
            # The modules are imported; the generated files are not kept.
            shutil.rmtree(gen_dir, ignore_errors=True)
        key, csr_der = new_key_and_csr()
        server_name = args.server_name or "[spiffe://%s/lanyard/server]" % trust_domain
        channel = open_channel(args.server, bundle_pem, server_name)
        result = attest(pb2, pb2_grpc, channel, args.token, csr_der, args.spiffe_id, args.timeout)
        summary = save(result, key, args.out)
    except grpc.RpcError as e:
        code = e.code()
        print(json.dumps({"code": code.name, "code_number": code.value[0], "details": e.details()}))
        return 1
    except (LocalError, OSError, ValueError) as e:
        print(json.dumps({"error": str(e)}))
        return 2
    finally:
        if channel is not None:
            channel.close()
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
