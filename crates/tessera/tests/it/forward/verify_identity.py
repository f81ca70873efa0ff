"""Verifies Tessera's identity JWTs as an upstream would: PyJWT (with cryptography) fetching the
public keys from the server's /.well-known/jwks.json. Reads a JSON list of cases on stdin
({"token": ..., "audience": ..., "issuer": ...}) and prints, per case, one JSON line: the claims
when the token verifies, else {"error": "<PyJWT exception class>"}.

Usage: python verify_identity.py JWKS_URL < cases.json
"""

import json
import sys

import jwt


def main() -> None:
    jwks = jwt.PyJWKClient(sys.argv[1], cache_keys=False, cache_jwk_set=False)
    for case in json.load(sys.stdin):
        try:
            key = jwks.get_signing_key_from_jwt(case["token"])
            claims = jwt.decode(
                case["token"],
                key=key,
                algorithms=["EdDSA"],
                audience=case["audience"],
                issuer=case["issuer"],
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
            header = jwt.get_unverified_header(case["token"])
            print(json.dumps({"claims": claims, "kid": header.get("kid")}))
        except jwt.PyJWTError as e:
            print(json.dumps({"error": type(e).__name__}))


if __name__ == "__main__":
    main()
