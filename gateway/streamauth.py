"""How a provider media stream proves it belongs to a call we answered.

The control plane answers a voice webhook (signature-checked there) with a stream URL and a short
lived HMAC token (:mod:`gateway.tokens`, audience ``stream``) bound to the channel, the provider and
the call. The token travels where each provider lets per-call data travel:

* Twilio: a ``<Parameter name="token">`` -> ``start.customParameters.token`` (Twilio drops query
  strings on stream URLs).
* Plivo: ``extraHeaders="token=..."`` -> ``start.extra_headers``. Plivo documents extraHeaders as
  alphanumeric, so the token is escaped into ``[A-Za-z0-9]`` (:func:`plivo_escape`).
* Exotel: the stream URL's query (``?token=...``), which Exotel forwards on the upgrade. Exotel
  has no webhook signature, so the HTTPS endpoint its Voicebot applet fetches the URL from is
  itself authenticated by a per-channel media key (:func:`exotel_media_key`), given either as
  ``?key=`` or as the password of Basic auth (``https://converse:KEY@host/...``, which Exotel
  turns into an ``Authorization`` header). The same key also authenticates a Voicebot applet
  configured with the ``wss://`` URL directly. The key is derived from the token secret (every
  node can check it, nothing stored); a channel row may pin another key by its SHA-256
  (``ChannelInfo.media_key_sha256``).

Tokens are single-use per node (:class:`ReplayGuard`) and bound to the call id the provider
reports in ``start``, so a token captured from logs of one call cannot start another.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from gateway import tokens

AUDIENCE = "stream"
TOKEN_TTL_S = 60.0        # the provider connects within a second or two of our answer
TOKEN_PARAM = "token"


class StreamAuthError(Exception):
    """The stream's credential is missing, forged, expired, replayed or for another call."""


def issue_stream_token(secret: bytes, provider: str, channel_id: str, call_id: str,
                       ttl_s: float = TOKEN_TTL_S, now: float | None = None) -> str:
    return tokens.issue(secret, AUDIENCE, ttl_s, now=now, ch=channel_id, call=call_id,
                        p=provider)


def verify_stream_token(secret: bytes, token: str | None, provider: str, channel_id: str,
                        call_id: str | None, now: float | None = None) -> dict:
    """The token's claims, or ``StreamAuthError``. ``call_id=None`` skips the call binding
    (Exotel's direct mode knows the call only after ``start``; it is checked there)."""
    try:
        claims = tokens.verify(secret, token, AUDIENCE, now=now)
    except tokens.TokenError as exc:
        raise StreamAuthError(str(exc)) from None
    if claims.get("ch") != channel_id or claims.get("p") != provider:
        raise StreamAuthError("stream token is for another channel")
    if call_id is not None and claims.get("call") != call_id:
        raise StreamAuthError("stream token is for another call")
    return claims


class ReplayGuard:
    """Remembers used token nonces until they expire (bounded), so a token starts one stream."""

    def __init__(self, max_entries: int = 100_000):
        self._seen: dict[str, int] = {}
        self._max = max_entries

    def use(self, claims: dict, now: float) -> None:
        nonce = f"{claims.get('n')}:{claims.get('call')}"
        if nonce in self._seen:
            raise StreamAuthError("stream token already used")
        if len(self._seen) >= self._max:
            self._prune(now)
        self._seen[nonce] = int(claims.get("exp", 0))

    def _prune(self, now: float) -> None:
        self._seen = {k: exp for k, exp in self._seen.items() if exp >= now}
        while len(self._seen) >= self._max:          # still full: forget the oldest
            del self._seen[next(iter(self._seen))]


# -- Plivo: extraHeaders are alphanumeric --------------------------------------------------------
_ESC = {"Z": "ZZ", "-": "Zm", "_": "Zu", ".": "Zd", "=": "Ze"}
_UNESC = {v[1]: k for k, v in _ESC.items()}


def plivo_escape(token: str) -> str:
    """A base64url token (``[A-Za-z0-9._=-]``) as ``[A-Za-z0-9]`` (reversible, ~5 % longer)."""
    return "".join(_ESC.get(c, c) for c in token)


def plivo_unescape(text: str) -> str:
    out = []
    it = iter(text)
    for c in it:
        if c == "Z":
            nxt = next(it, "")
            if nxt not in _UNESC:
                raise StreamAuthError("malformed stream token")
            out.append(_UNESC[nxt])
        else:
            out.append(c)
    return "".join(out)


# -- Exotel: a per-channel media key -----------------------------------------------------------
def exotel_media_key(secret: bytes, channel_id: str) -> str:
    mac = hmac.new(secret, b"exotel-media-key:" + channel_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:18]).decode()          # 24 URL-safe characters


def check_media_key(secret: bytes, channel_id: str, key: str | None,
                    pinned_sha256: str | None = None) -> None:
    if not key:
        raise StreamAuthError("media key missing")
    if hmac.compare_digest(key.encode(), exotel_media_key(secret, channel_id).encode()):
        return
    if pinned_sha256 and hmac.compare_digest(hashlib.sha256(key.encode()).hexdigest(),
                                             pinned_sha256.lower()):
        return
    raise StreamAuthError("media key rejected")


def key_from_basic_auth(header: str | None) -> str | None:
    """The password of an ``Authorization: Basic`` header (the user name is not checked)."""
    if not header or not header[:6].lower() == "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[2] or None
