"""A SPIFFE peer on Debian's Python cryptography (38 on bookworm), as a Python service would read an X509-SVID.

For each line of the manifest (name, chain PEM file, bundle PEM file, expected SPIFFE ID, tab separated) it
loads every certificate, reads the leaf's URI SANs and the extension under the OID given as the first
argument, and checks each signature of the path from the leaf to a root of the bundle (cryptography 38 has
no path validation of its own). It prints one JSON object per case and judges nothing else: the test asserts.

Usage: /usr/bin/python3 read_svids.py <oid> <manifest.tsv>
"""

import json
import re
import sys

import cryptography
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\s*", re.S)


def load(file):
    with open(file, "rb") as f:
        blocks = PEM_BLOCK.findall(f.read())
    if not blocks:
        raise ValueError(f"{file}: no certificate")
    # Certificates load lazily in some releases: touching the extensions parses them all.
    certs = [x509.load_pem_x509_certificate(b) for b in blocks]
    for c in certs:
        list(c.extensions)
    return certs


def signed_by(cert, issuer):
    key = issuer.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm)
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes)
        else:
            return False
    except InvalidSignature:
        return False
    return True


def path_problem(chain, roots):
    """'' when each certificate from the leaf up is signed by the next one, ending at a bundle root."""
    current = chain[0]
    candidates = list(chain[1:])
    while True:
        if any(r.subject == current.issuer and signed_by(current, r) for r in roots):
            return ""
        parent = next((c for c in candidates if c.subject == current.issuer and signed_by(current, c)), None)
        if parent is None:
            return f"no issuer of {current.subject.rfc4514_string()} in the bundle"
        # Each certificate of the chain is used once: a self-signed one that is no root ends the path.
        candidates.remove(parent)
        current = parent


def check(oid, name, chain_file, bundle_file):
    r = {"name": name, "cryptography": cryptography.__version__}
    try:
        chain = load(chain_file)
        roots = load(bundle_file)
    except Exception as e:  # noqa: BLE001 - every refusal is reported, whatever its class
        r["parseError"] = f"{type(e).__name__}: {e}"
        return r
    leaf = chain[0]
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        r["uris"] = san.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        r["uris"] = []
    try:
        ext = leaf.extensions.get_extension_for_oid(x509.ObjectIdentifier(oid))
        value = ext.value.value if isinstance(ext.value, x509.UnrecognizedExtension) else ext.value.public_bytes()
        r["extension"] = {"critical": ext.critical, "valueHex": value.hex()}
    except x509.ExtensionNotFound:
        r["extension"] = None
    r["pathProblem"] = path_problem(chain, roots)
    return r


def main():
    if len(sys.argv) != 3:
        print("usage: read_svids.py <oid> <manifest.tsv>", file=sys.stderr)
        sys.exit(2)
    with open(sys.argv[2], encoding="utf-8") as manifest:
        for line in manifest:
            fields = line.rstrip("\n").split("\t")
            if len(fields) == 4:
                print(json.dumps(check(sys.argv[1], *fields[:3])), flush=True)


main()
