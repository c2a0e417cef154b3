"""Short-lived HMAC-signed tokens shared by the control plane (which issues them) and the media plane
(which verifies them). Any node holding the shared secret can verify; nothing is stored.

Format: ``base64url(json claims) "." base64url(HMAC-SHA256(secret, first part))``. Claims always carry
``exp`` (unix seconds) and ``aud`` (what the token is for: ``web`` session, ``stream`` for a provider
media stream), plus whatever the issuer binds in (channel id, target, call id).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

import msgspec

MAX_TOKEN_LENGTH = 2048


class TokenError(Exception):
    """The token is missing, malformed, forged, expired or meant for something else."""


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue(secret: bytes, audience: str, ttl_s: float, now: float | None = None, **claims) -> str:
    if not secret:
        raise ValueError("token secret is empty")
    body = dict(claims, aud=audience, exp=int((time.time() if now is None else now) + ttl_s),
                n=secrets.token_urlsafe(6))
    payload = _b64e(msgspec.json.encode(body))
    mac = hmac.new(secret, payload.encode("ascii"), hashlib.sha256).digest()
    return payload + "." + _b64e(mac)


def verify(secret: bytes, token: str | None, audience: str, now: float | None = None) -> dict:
    """Return the claims of a valid token; raise TokenError (never another exception) otherwise."""
    if not token or not isinstance(token, str):
        raise TokenError("missing token")
    if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
        raise TokenError("malformed token")
    payload, _, sig = token.partition(".")
    try:
        given = _b64d(sig)
        expected = hmac.new(secret, payload.encode("ascii"), hashlib.sha256).digest()
    except (ValueError, UnicodeEncodeError):
        raise TokenError("malformed token") from None
    if not hmac.compare_digest(given, expected):
        raise TokenError("bad token signature")
    try:
        claims = msgspec.json.decode(_b64d(payload))
    except (ValueError, msgspec.DecodeError):
        raise TokenError("malformed token") from None
    if not isinstance(claims, dict) or not isinstance(claims.get("exp"), int):
        raise TokenError("malformed token")
    if claims.get("aud") != audience:
        raise TokenError("token is not valid here")
    if claims["exp"] < (time.time() if now is None else now):
        raise TokenError("token expired")
    return claims
