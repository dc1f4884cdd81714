"""Python `cryptography` peer for tests/peer_pfx.rs.

    python3 tests/peers/pfx_peer.py pfx <file.pfx> <password>
        Opens the PKCS#12 file with pkcs12.load_key_and_certificates (and load_pkcs12 for the
        friendly name), checks the key matches the certificate and signs/verifies with it, and
        checks that a wrong password is rejected. Prints key=value lines.

    python3 tests/peers/pfx_peer.py jwt <token> <cert.der>
        Verifies an RS256 compact JWS with the certificate's public key (RSASSA-PKCS1-v1_5,
        SHA-256) and checks the x5t / x5t#S256 header thumbprints. Prints the claims as JSON.

Requires `cryptography>=42` (not_valid_after_utc). Exits non-zero on any failure.
"""

import base64
import hashlib
import json
import sys

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.hazmat.primitives.serialization import pkcs12
    import cryptography
except ImportError as e:  # pragma: no cover - reported by the Rust test
    print(f"MISSING: python package 'cryptography' ({e}); pip install 'cryptography>=42'")
    sys.exit(90)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def check_pfx(path: str, password: str) -> None:
    data = open(path, "rb").read()
    key, cert, extra = pkcs12.load_key_and_certificates(data, password.encode("ascii"))
    if key is None or cert is None:
        raise SystemExit(f"key or certificate missing: key={key is not None} cert={cert is not None}")
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SystemExit(f"not an RSA key: {type(key)}")
    if key.public_key().public_numbers() != cert.public_key().public_numbers():
        raise SystemExit("key does not match certificate")
    message = b"pfx peer check"
    sig = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    cert.public_key().verify(sig, message, padding.PKCS1v15(), hashes.SHA256())
    friendly = pkcs12.load_pkcs12(data, password.encode("ascii")).cert.friendly_name
    cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    print(f"cryptography={cryptography.__version__}")
    print(f"subject_cn={cn}")
    print(f"issuer_is_subject={cert.issuer == cert.subject}")
    print(f"key_bits={key.key_size}")
    print(f"sig_hash={cert.signature_hash_algorithm.name}")
    print(f"not_before={int(cert.not_valid_before_utc.timestamp())}")
    print(f"not_after={int(cert.not_valid_after_utc.timestamp())}")
    print(f"friendly_name={friendly.decode() if friendly else ''}")
    print(f"extra_certs={len(extra)}")
    print("signature_verified=true")
    cert.verify_directly_issued_by(cert)
    print("self_signature=valid")
    try:
        pkcs12.load_key_and_certificates(data, (password + "x").encode("ascii"))
    except ValueError:
        print("wrong_password=rejected")
    else:
        print("wrong_password=accepted")
        raise SystemExit(3)


def check_jwt(token: str, cert_path: str) -> None:
    der = open(cert_path, "rb").read()
    cert = x509.load_der_x509_certificate(der)
    h, c, s = token.split(".")
    header = json.loads(b64url_decode(h))
    if header.get("alg") != "RS256" or header.get("typ") != "JWT":
        raise SystemExit(f"unexpected header {header}")
    if header.get("x5t") != b64url(hashlib.sha1(der).digest()):
        raise SystemExit("x5t is not the certificate's SHA-1 thumbprint")
    if header.get("x5t#S256") != b64url(hashlib.sha256(der).digest()):
        raise SystemExit("x5t#S256 is not the certificate's SHA-256 thumbprint")
    cert.public_key().verify(
        b64url_decode(s), f"{h}.{c}".encode("ascii"), padding.PKCS1v15(), hashes.SHA256()
    )
    print("jwt_signature=valid")
    print("claims=" + json.dumps(json.loads(b64url_decode(c)), sort_keys=True))


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "pfx":
        check_pfx(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "jwt":
        check_jwt(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
