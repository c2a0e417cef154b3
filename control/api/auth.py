"""``Authorization: Bearer <key>`` on every /api/v1 route except provider webhooks.

401: no header, or not a Bearer credential. 403: a well-formed key we do not know, or a revoked one.
"""
from __future__ import annotations

from quart import g, request

from control.api.errors import ApiError
from control.api.state import state
from control.store import hash_api_key, repo

MAX_KEY_LENGTH = 256
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="converse"'}


def _bearer() -> str:
    header = request.headers.get("Authorization")
    if not header:
        raise ApiError(401, "unauthorized", "missing Authorization: Bearer <api key> header",
                       headers=_CHALLENGE)
    scheme, _, key = header.strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key or " " in key or len(key) > MAX_KEY_LENGTH:
        raise ApiError(401, "unauthorized", "malformed Authorization header (want: Bearer <api key>)",
                       headers=_CHALLENGE)
    return key


async def require_api_key() -> None:
    key = _bearer()
    row = await state().store.read(repo.find_api_key, hash_api_key(key))
    if row is None:
        raise ApiError(403, "forbidden", "unknown API key")
    if row.revoked_at is not None:
        raise ApiError(403, "forbidden", "this API key has been revoked")
    g.api_key_id = row.id
