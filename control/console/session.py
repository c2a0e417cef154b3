"""The console's login session and CSRF tokens: an HMAC-signed cookie, no server-side table.

The cookie carries the API key's *id* (never the key), an expiry and a random session nonce, signed
with a key derived from the control plane's secret key (so every control node accepts it). Each
request re-reads the key row: revoking the key ends its console sessions at once.

CSRF: a synchronizer token derived from the session nonce (HMAC), embedded in every page and form,
checked server-side on every state-changing request (form field ``csrf_token`` or header
``X-CSRF-Token``). Before login there is no session: the login form's token is bound to a random
pre-login cookie instead. The cookies are HttpOnly and SameSite=Strict on top of that.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

import msgspec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SESSION_COOKIE = "converse_console"
LOGIN_COOKIE = "converse_console_login"
SESSION_TTL_S = 12 * 3600
LOGIN_TTL_S = 1800
MAX_COOKIE_CHARS = 1024


class SessionData(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    kid: str          # API key id
    exp: int          # unix seconds
    nonce: str        # random; CSRF tokens are derived from it


def console_secret(secret_key: bytes) -> bytes:
    """A key of its own (HKDF), so a console cookie can never pass for a session token."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"converse-console-session").derive(secret_key)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, purpose: str, payload: str) -> str:
    return _b64(hmac.new(secret, f"{purpose}|{payload}".encode(), hashlib.sha256).digest())


def issue(secret: bytes, key_id: str, *, now: int | None = None,
          ttl_s: int = SESSION_TTL_S) -> tuple[str, SessionData]:
    """A signed cookie value for a new session of API key ``key_id``."""
    data = SessionData(kid=key_id, exp=int(now if now is not None else time.time()) + ttl_s,
                       nonce=secrets.token_urlsafe(16))
    payload = _b64(msgspec.json.encode(data))
    return f"{payload}.{_mac(secret, 'session', payload)}", data


def verify(secret: bytes, cookie: str | None, *, now: int | None = None) -> SessionData | None:
    """The session in a cookie, or None when it is missing, forged, garbled or expired."""
    if not cookie or len(cookie) > MAX_COOKIE_CHARS or cookie.count(".") != 1:
        return None
    payload, mac = cookie.split(".")
    if not hmac.compare_digest(mac, _mac(secret, "session", payload)):
        return None
    try:
        data = msgspec.json.decode(_unb64(payload), type=SessionData)
    except (ValueError, msgspec.DecodeError):
        return None
    if data.exp <= int(now if now is not None else time.time()):
        return None
    return data


def csrf_token(secret: bytes, nonce: str) -> str:
    """The synchronizer token of a session (or of a pre-login nonce)."""
    return _mac(secret, "csrf", nonce)


def csrf_ok(secret: bytes, nonce: str | None, presented: str | None) -> bool:
    if not nonce or not presented or len(presented) > 128:
        return False
    return hmac.compare_digest(presented, csrf_token(secret, nonce))


def new_login_nonce() -> str:
    return secrets.token_urlsafe(16)
