"""Webhook signatures as each provider computes them, written from protocols.md (sections 2.1,
3.5, 5.2) independently of the SDKs the gateway validates with, so tests that sign with these and
validate with the SDKs check two implementations against each other.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse


def twilio_signature(auth_token: str, url: str, params: dict[str, str] | None = None) -> str:
    """X-Twilio-Signature: base64(HMAC-SHA1(token, url + sorted name+value pairs)) for a form POST;
    for GET (params in the URL) pass ``params=None``."""
    data = url + "".join(k + v for k, v in sorted((params or {}).items()))
    return base64.b64encode(hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
                            ).decode()


def plivo_v3_signature(auth_token: str, url: str, nonce: str, params: dict[str, str] | None = None,
                       method: str = "POST") -> str:
    """X-Plivo-Signature-V3: base64(HMAC-SHA256(token, base_string + "." + nonce))."""
    parts = urllib.parse.urlsplit(url)
    base = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    params = dict(params or {})
    if method.upper() == "GET":
        merged = dict(params, **query)
        rendered = "&".join(f"{k}={merged[k]}" for k in sorted(merged))
        string = f"{base}?{rendered}" if rendered else base
    elif not params and not query:
        string = base
    else:
        string = base + "?"
        if query:
            string += "&".join(f"{k}={query[k]}" for k in sorted(query)) + "."
        string += "".join(k + str(params[k]) for k in sorted(params))
    mac = hmac.new(auth_token.encode(), f"{string}.{nonce}".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def meta_signature(app_secret: str, body: bytes) -> str:
    """X-Hub-Signature-256 header value: ``sha256=`` + hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
