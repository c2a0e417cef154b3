"""/api/v1/keys: list, create (the key is in the response once) and revoke API keys.
``converse keys create NAME`` does the same from the command line (the first key has to come
from there)."""
from __future__ import annotations

from quart import Blueprint, g

from control import models
from control.api.auth import require_api_key
from control.api.errors import conflict, json_response, not_found
from control.api.routing import operation
from control.api.state import state
from control.store import create_api_key, repo

bp = Blueprint("keys", __name__, url_prefix="/api/v1")
bp.before_request(require_api_key)

ERR = models.Error
COMMON = {401: ERR, 403: ERR}


def key_out(row: repo.ApiKeyRow) -> models.KeyOut:
    return models.KeyOut(id=row.id, name=row.name, prefix=row.prefix, created_at=row.created_at,
                         revoked_at=row.revoked_at)


@operation(bp, "GET", "/keys", summary="List API keys (never the keys themselves)", tag="keys",
           responses={200: models.KeyList, **COMMON})
async def list_keys():
    rows = await state().store.read(repo.list_api_keys)
    return json_response(models.KeyList([key_out(r) for r in rows]))


@operation(bp, "POST", "/keys", summary="Create an API key; the response is the only time it is shown",
           tag="keys", body=models.KeyCreate, responses={201: models.KeyCreated, 422: ERR, **COMMON})
async def create_key(body: models.KeyCreate):
    row, key = await state().store.run(create_api_key, body.name)
    return json_response(models.KeyCreated(id=row.id, name=row.name, key=key), 201)


@operation(bp, "DELETE", "/keys/{key_id}", summary="Revoke an API key", tag="keys",
           responses={204: None, 404: ERR, 409: ERR, **COMMON})
async def revoke_key(key_id: str):
    if key_id == getattr(g, "api_key_id", None):
        raise conflict("refusing to revoke the key this request is authenticated with")
    if not await state().store.run(repo.revoke_api_key, key_id):
        raise not_found("active API key", key_id)
    return "", 204
