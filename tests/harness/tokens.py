"""Mint JWTs for bearer-token tests, signed with the test IdP's fixture keys.

    tok = mint_token(token_claims(stack, sub="bob"))               # k1, RS256
    tok = mint_token(claims, kid="k2")                              # rotated key
    tok = mint_token(claims, alg="none")                            # unsigned
    tok = mint_token(claims, alg="HS256", hmac_key=public_pem("k1"))  # confusion
    tok = mint_token(claims, header_overrides={"jku": "http://x", "kid": None})

The header is {"alg": alg, "typ": "JWT", "kid": kid} with `header_overrides`
merged over it (None removes a member); the signature is made with `alg`
(so header_overrides={"alg": "RS512"} gives a header lying about the
signature). `claims` may be a dict or raw bytes/str for a malformed payload.
PyJWT's algorithm objects do the signing; nothing here checks anything.
"""

from __future__ import annotations

import json
import time
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from jwt.algorithms import RSAAlgorithm, get_default_algorithms

from http_util import b64url_encode

if TYPE_CHECKING:
    from stack import Stack

FIXTURES_DIR = Path(__file__).resolve().parents[1] / "fixtures"
ALL_KEYS = FIXTURES_DIR / "idp-keys-both.json"


@lru_cache(maxsize=None)
def _jwks(path: str) -> dict:
    return json.loads(Path(path).read_text())


def private_jwk(kid: str = "k1", key_file: str | Path = ALL_KEYS) -> dict:
    for k in _jwks(str(key_file))["keys"]:
        if k.get("kid") == kid:
            return dict(k)
    raise KeyError(f"no key {kid!r} in {key_file}")


def public_jwk(kid: str = "k1", key_file: str | Path = ALL_KEYS) -> dict:
    """The public members of a fixture key (as the IdP's /jwks serves it)."""
    k = private_jwk(kid, key_file)
    return {m: k[m] for m in ("kty", "kid", "use", "alg", "n", "e") if m in k}


def private_key(kid: str = "k1", key_file: str | Path = ALL_KEYS):
    return RSAAlgorithm.from_jwk(json.dumps(private_jwk(kid, key_file)))


def public_pem(kid: str = "k1", key_file: str | Path = ALL_KEYS) -> bytes:
    """PEM of the public key: the classic HS256 key-confusion secret."""
    return private_key(kid, key_file).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _json_part(value: Any) -> str:
    if isinstance(value, bytes):
        return b64url_encode(value)
    if isinstance(value, str):
        return b64url_encode(value.encode())
    return b64url_encode(json.dumps(value, separators=(",", ":")).encode())


def mint_token(
    claims: dict | str | bytes,
    kid: str | None = "k1",
    alg: str = "RS256",
    header_overrides: dict | None = None,
    key_file: str | Path = ALL_KEYS,
    hmac_key: bytes | str | None = None,
    key: Any = None,
) -> str:
    """A compact JWS over `claims` (see the module doc). `key` overrides the
    fixture key (any key PyJWT's algorithm for `alg` accepts)."""
    header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    for name, value in (header_overrides or {}).items():
        if value is None:
            header.pop(name, None)
        else:
            header[name] = value
    signing_input = f"{_json_part(header)}.{_json_part(claims)}".encode("ascii")

    if alg.lower() == "none":
        return signing_input.decode() + "."
    algorithms = get_default_algorithms()
    if alg not in algorithms:
        raise ValueError(f"PyJWT cannot sign {alg}")
    algo = algorithms[alg]
    if alg.startswith("HS"):
        secret = hmac_key if hmac_key is not None else b"oidc-edge-test-hmac-secret"
        signing_key = secret.encode() if isinstance(secret, str) else secret
    elif key is not None:
        signing_key = key
    else:
        signing_key = private_key(kid or "k1", key_file)
    signature = algo.sign(signing_input, signing_key)
    return f"{signing_input.decode()}.{b64url_encode(signature)}"


def token_claims(
    stack: "Stack | None" = None,
    sub: str = "alice",
    ttl: int = 300,
    issuer: str | None = None,
    audience: str | list[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Claims of a valid-looking ID token for `stack` (iss, aud = client_id,
    sub, iat, exp = now + ttl), with `extra` merged over (None removes)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer or (stack.issuer if stack else "http://127.0.0.1:9000"),
        "aud": audience or (stack.client_id if stack else "oidc-edge-test"),
        "sub": sub,
        "iat": now,
        "exp": now + ttl,
        "email": f"{sub}@example.com",
    }
    for k, v in extra.items():
        if v is None:
            claims.pop(k, None)
        else:
            claims[k] = v
    return claims
