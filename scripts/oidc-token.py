#!/usr/bin/env python3
"""Signs a user in at an OpenID provider by the authorization-code flow with PKCE, as a
browser-less client would, and prints the ID token (a JWT) it issues.

    oidc-token.py ISSUER CLIENT_ID SUBJECT [CLAIMS_JSON]

CLAIMS_JSON, when given, is stored first as the user's claims (oidc-provider-mock's
PUT /users/{sub}). The tests call the broker with the printed token."""
import base64
import hashlib
import json
import secrets
import sys
import urllib.parse

import requests


def main() -> None:
    issuer, client_id, subject = sys.argv[1:4]
    if len(sys.argv) > 4:
        requests.put(f"{issuer}/users/{subject}", json=json.loads(sys.argv[4]), timeout=10).raise_for_status()
    discovery = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    redirect = "http://127.0.0.1/callback"
    state = secrets.token_urlsafe(16)
    query = {
        "client_id": client_id, "redirect_uri": redirect, "response_type": "code", "scope": "openid",
        "state": state, "code_challenge": challenge, "code_challenge_method": "S256",
    }
    answer = requests.post(
        discovery["authorization_endpoint"] + "?" + urllib.parse.urlencode(query),
        data={"sub": subject}, allow_redirects=False, timeout=10)
    location = urllib.parse.urlparse(answer.headers["Location"])
    params = urllib.parse.parse_qs(location.query)
    assert params["state"] == [state], "the provider answered another state"
    token = requests.post(
        discovery["token_endpoint"],
        data={"grant_type": "authorization_code", "code": params["code"][0], "redirect_uri": redirect,
              "code_verifier": verifier},
        auth=(client_id, "test-secret"),
        timeout=10)
    token.raise_for_status()
    print(token.json()["id_token"])


if __name__ == "__main__":
    main()
