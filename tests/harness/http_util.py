"""Small HTTP helpers for the end-to-end tests: Set-Cookie parsing, Cookie
header parsing, unverified JWT payload decoding."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import requests


@dataclass
class SetCookie:
    """One Set-Cookie header. `attrs` has lowercased attribute names; flag
    attributes (HttpOnly, Secure, Partitioned) map to True."""

    name: str
    value: str
    attrs: dict[str, Any] = field(default_factory=dict)
    raw: str = ""

    @property
    def http_only(self) -> bool:
        return "httponly" in self.attrs

    @property
    def secure(self) -> bool:
        return "secure" in self.attrs

    @property
    def same_site(self) -> str | None:
        v = self.attrs.get("samesite")
        return v if isinstance(v, str) else None

    @property
    def path(self) -> str | None:
        v = self.attrs.get("path")
        return v if isinstance(v, str) else None

    @property
    def max_age(self) -> int | None:
        v = self.attrs.get("max-age")
        try:
            return int(v) if isinstance(v, str) else None
        except ValueError:
            return None

    @property
    def expires(self) -> float | None:
        v = self.attrs.get("expires")
        if not isinstance(v, str):
            return None
        try:
            return parsedate_to_datetime(v).timestamp()
        except (TypeError, ValueError):
            return None

    @property
    def clears(self) -> bool:
        """True when this header deletes the cookie: empty value, Max-Age
        <= 0, or Expires in the past."""
        if self.value == "":
            return True
        if self.max_age is not None:
            return self.max_age <= 0
        exp = self.expires
        return exp is not None and exp <= time.time()

    @property
    def creates(self) -> bool:
        return not self.clears


def parse_set_cookie(header: str) -> SetCookie:
    parts = header.split(";")
    name, sep, value = parts[0].partition("=")
    name, value = name.strip(), value.strip() if sep else ""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    attrs: dict[str, Any] = {}
    for part in parts[1:]:
        k, sep, v = part.strip().partition("=")
        if not k:
            continue
        attrs[k.strip().lower()] = v.strip() if sep else True
    return SetCookie(name=name, value=value, attrs=attrs, raw=header)


def parse_set_cookie_headers(headers: list[str]) -> list[SetCookie]:
    return [parse_set_cookie(h) for h in headers]


def set_cookie_headers(resp: requests.Response) -> list[str]:
    """Every Set-Cookie header of `resp`, unjoined."""
    raw_list = getattr(resp, "raw_set_cookies", None)
    if raw_list is not None:
        return list(raw_list)
    raw = getattr(resp, "raw", None)
    headers = getattr(raw, "headers", None)
    if headers is not None and hasattr(headers, "getlist"):
        return list(headers.getlist("Set-Cookie"))
    if headers is not None and hasattr(headers, "get_all"):
        return list(headers.get_all("Set-Cookie") or [])
    one = resp.headers.get("Set-Cookie")
    return [one] if one else []


def cookies_from_response(resp: requests.Response, prefix: str | None = None) -> list[SetCookie]:
    """Parsed Set-Cookie headers of `resp`, optionally only names starting
    with `prefix`."""
    out = parse_set_cookie_headers(set_cookie_headers(resp))
    if prefix is not None:
        out = [c for c in out if c.name.startswith(prefix)]
    return out


def created_cookies(resp: requests.Response, prefix: str = "oidc_edge") -> list[SetCookie]:
    """Set-Cookie headers of `resp` that create (not clear) a cookie whose
    name starts with `prefix`."""
    return [c for c in cookies_from_response(resp, prefix) if c.creates]


def cookie_names(cookie_header: str | None) -> list[str]:
    """Names in a Cookie request header ("a=1; b=2" -> ["a", "b"])."""
    if not cookie_header:
        return []
    names = []
    for part in cookie_header.split(";"):
        name = part.strip().partition("=")[0].strip()
        if name:
            names.append(name)
    return names


def b64url_decode(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwt_parts(token: str) -> tuple[dict, dict]:
    """(header, payload) of a compact JWS, not verified."""
    h, p, _s = token.split(".")
    return json.loads(b64url_decode(h)), json.loads(b64url_decode(p))


def jwt_payload(token: str) -> dict:
    return jwt_parts(token)[1]


def bearer_token(headers: dict[str, str]) -> str | None:
    """The token of an `authorization: Bearer <token>` header (lowercased
    names, as the echo upstream reports them)."""
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
