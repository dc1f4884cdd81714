"""(Not named token.py: that would shadow the standard library module `token`.)

Real peers for the end-to-end suite: Microsoft's msal and pyca/cryptography (PyPI).

  msal_token.py secret AUTHORITY CLIENT_ID SECRET [CA_PEM]
      client-credentials token with the client secret (msal.ConfidentialClientApplication)
  msal_token.py cert AUTHORITY CLIENT_ID PFX PASSWORD [CA_PEM]
      client-credentials token by certificate assertion, key and certificate from the .pfx
  msal_token.py pfx PFX PASSWORD
      opens the .pfx: subject, SHA-1 thumbprint, validity, key size, and the private key's
      PKCS#8 DER (base64 and hex, for leak checks)

AUTHORITY is https://HOST:PORT/<tenant> (msal only accepts https authorities; the emulator runs
with --https and CA_PEM is its CA). Prints one JSON object; a refused token gives ok=false with
msal's error (exit 0), a broken input raises (exit 1).
"""
import base64
import json
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12


def load_pfx(path, password):
    with open(path, "rb") as f:
        data = f.read()
    key, cert, extra = pkcs12.load_key_and_certificates(data, password.encode("ascii"))
    if key is None or cert is None:
        raise SystemExit("the .pfx holds no key or no certificate")
    return key, cert, extra


def claims(token):
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        return json.loads(base64.urlsafe_b64decode(payload))
    except Exception:  # noqa: BLE001 - report, do not fail: the token itself is the proof
        return {}


def get_token(authority, client_id, credential, ca):
    import msal
    import requests

    session = requests.Session()
    # Not the environment's REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE (they override session.verify) nor
    # its proxies: only the emulator's CA, directly.
    session.trust_env = False
    if ca:
        session.verify = ca
    app = msal.ConfidentialClientApplication(
        client_id,
        authority=authority,
        client_credential=credential,
        http_client=session,
        validate_authority=False,
        instance_discovery=False,
    )
    result = app.acquire_token_for_client(scopes=["https://graph.microsoft.com/.default"])
    if "access_token" in result:
        c = claims(result["access_token"])
        return {
            "ok": True,
            "token_type": result.get("token_type"),
            "appid": c.get("appid") or c.get("azp"),
            "tid": c.get("tid"),
            "roles": len(c.get("roles") or []),
            "msal": msal.__version__,
        }
    return {
        "ok": False,
        "error": result.get("error"),
        "error_description": result.get("error_description"),
        "error_codes": result.get("error_codes"),
    }


def main(argv):
    mode = argv[1] if len(argv) > 1 else ""
    if mode == "secret" and len(argv) in (5, 6):
        out = get_token(argv[2], argv[3], argv[4], argv[5] if len(argv) == 6 else None)
    elif mode == "cert" and len(argv) in (6, 7):
        key, cert, _ = load_pfx(argv[4], argv[5])
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")
        thumb = cert.fingerprint(hashes.SHA1()).hex().upper()
        out = get_token(argv[2], argv[3], {"private_key": pem, "thumbprint": thumb}, argv[6] if len(argv) == 7 else None)
        out["thumbprint"] = thumb
    elif mode == "pfx" and len(argv) == 4:
        key, cert, extra = load_pfx(argv[2], argv[3])
        der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        out = {
            "ok": True,
            "subject": cert.subject.rfc4514_string(),
            "thumbprint": cert.fingerprint(hashes.SHA1()).hex().upper(),
            "not_before": cert.not_valid_before_utc.isoformat(),
            "not_after": cert.not_valid_after_utc.isoformat(),
            "key_bits": key.key_size,
            "extra_certs": len(extra or []),
            "key_pkcs8_b64": base64.b64encode(der).decode("ascii"),
            "key_pkcs8_hex": der.hex(),
        }
    else:
        raise SystemExit(__doc__)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv)
