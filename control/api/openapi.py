"""``GET /api/v1/openapi.json``: OpenAPI 3.1 built from the route table and the msgspec Structs."""
from __future__ import annotations

import functools
import re

import msgspec
from quart import Blueprint

from control.api.errors import json_response
from control.api.routing import OPERATIONS, Operation, operation

bp = Blueprint("openapi", __name__, url_prefix="/api/v1")

_PARAM = re.compile(r"\{(\w+)\}")
_REF = "#/components/schemas/{name}"


def _content(kind) -> dict | None:
    if kind is None:
        return None
    if kind == "text":
        return {"text/plain": {"schema": {"type": "string"}}}
    if kind == "any":
        return {"*/*": {"schema": {}}}
    return {"application/json": {"schema": {"$ref": _REF.format(name=kind.__name__)}}}


def _operation(op: Operation) -> dict:
    params = [{"name": name, "in": "path", "required": True,
               "schema": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[^/]+$"}}
              for name in _PARAM.findall(op.path)]
    params += [{"name": q.name, "in": "query", "required": False, "schema": q.schema,
                **({"description": q.description} if q.description else {})} for q in op.query]
    out: dict = {"operationId": op.operation_id, "summary": op.summary, "tags": [op.tag],
                 "responses": {}}
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {"required": op.body_required, "content": _content(op.body)}
    for status, kind in sorted(op.responses.items()):
        resp = {"description": _DESCRIPTIONS.get(status, "response")}
        content = _content(kind)
        if content:
            resp["content"] = content
        out["responses"][str(status)] = resp
    out["security"] = [{"bearer": []}] if op.auth else []
    return out


_DESCRIPTIONS = {200: "OK", 201: "created", 204: "no content", 401: "missing or malformed API key",
                 403: "unknown or revoked API key", 404: "not found", 409: "conflict",
                 422: "validation error or the provider rejected the request",
                 502: "the provider could not be reached or answered garbage",
                 503: "unavailable", 504: "the provider did not answer in time"}


@functools.cache
def document() -> dict:
    from control.api import _feature_blueprints
    _feature_blueprints()      # their operations register on import: the document must have them
    structs = {k for op in OPERATIONS for k in [op.body, *op.responses.values()]
               if isinstance(k, type)}
    _, components = msgspec.json.schema_components(sorted(structs, key=lambda t: t.__name__),
                                                   ref_template=_REF)
    paths: dict = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Converse Gateway control API", "version": "1"},
        "paths": paths,
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


@operation(bp, "GET", "/openapi.json", summary="This document", tag="meta", auth=False,
           responses={200: "any"})
async def openapi_json():
    return json_response(document())
