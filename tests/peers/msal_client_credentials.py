"""Microsoft's own client library (msal, from PyPI) gets a client-credentials token from the
emulator over HTTPS, then calls Graph with it. Driven by tests/emulator_msal.rs.

Environment: EMU_AUTHORITY (https://localhost:PORT/<tenant>), EMU_CA (CA PEM path),
EMU_CLIENT_ID, and either EMU_SECRET or EMU_KEY_PEM (path) + EMU_THUMBPRINT (hex SHA-1),
optionally EMU_GRAPH_CHECK (a Graph URL to GET with the token).
Prints one JSON line: {"ok": bool, ...}.
"""
import json
import os
import sys

import msal
import requests


def main():
    authority = os.environ["EMU_AUTHORITY"]
    ca = os.environ["EMU_CA"]
    client_id = os.environ["EMU_CLIENT_ID"]
    if os.environ.get("EMU_SECRET"):
        credential = os.environ["EMU_SECRET"]
        kind = "secret"
    else:
        with open(os.environ["EMU_KEY_PEM"]) as f:
            key = f.read()
        credential = {"private_key": key, "thumbprint": os.environ["EMU_THUMBPRINT"]}
        kind = "certificate"
    session = requests.Session()
    # REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE in the environment would override `verify`.
    session.trust_env = False
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
    out = {"ok": "access_token" in result, "kind": kind, "msal": msal.__version__}
    if "access_token" in result:
        out["token_type"] = result.get("token_type")
        out["expires_in"] = result.get("expires_in")
        check = os.environ.get("EMU_GRAPH_CHECK")
        if check:
            r = session.get(check, headers={"Authorization": "Bearer " + result["access_token"]})
            out["graph_status"] = r.status_code
            out["graph_body"] = r.json()
    else:
        out["error"] = result.get("error")
        out["error_description"] = result.get("error_description")
        out["error_codes"] = result.get("error_codes")
    print(json.dumps(out))
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
