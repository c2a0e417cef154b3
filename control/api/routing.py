"""Declare each operation once: the route, its body Struct and its responses. The same table
registers the Quart view and feeds the OpenAPI document, so the two cannot disagree.

    @operation(bp, "POST", "/channels/{channel_id}/activate", summary="...", tag="channels",
               responses={200: models.ChannelOut, 404: models.Error})
    async def activate(channel_id: str) -> Response: ...

With ``body=SomeStruct`` the view receives ``body=`` already decoded and validated (422 otherwise).
"""
from __future__ import annotations

import functools
import re
from typing import Any, Callable

import msgspec
from quart import Blueprint

from control.api import errors

_PARAM = re.compile(r"\{(\w+)\}")


class QueryParam(msgspec.Struct, frozen=True):
    name: str
    schema: dict
    description: str = ""


class Operation(msgspec.Struct, frozen=True, kw_only=True):
    method: str
    path: str                       # OpenAPI style, full: /api/v1/channels/{channel_id}
    operation_id: str
    summary: str
    tag: str
    body: Any = None                # a Struct type, or None
    body_required: bool = True
    responses: dict[int, Any]       # status -> Struct type | None (no JSON body) | "text"
    query: tuple[QueryParam, ...] = ()
    auth: bool = True


OPERATIONS: list[Operation] = []


def operation(bp: Blueprint, method: str, path: str, *, summary: str, tag: str, responses: dict,
              body: Any = None, body_required: bool = True, query: tuple = (),
              auth: bool = True, prepare: Callable[[Any], None] | None = None):
    """``prepare(raw_json)`` may raise a 422 before Struct conversion (e.g. to name dict keys)."""
    full = (bp.url_prefix or "") + path
    quart_path = _PARAM.sub(r"<\1>", path)

    def deco(fn):
        @functools.wraps(fn)
        async def view(**kwargs):
            if body is not None:
                raw = await errors.read_json(required=body_required)
                if raw is errors.NO_BODY:
                    kwargs["body"] = body()
                else:
                    if prepare is not None:
                        prepare(raw)
                    kwargs["body"] = errors.convert(raw, body)
            return await fn(**kwargs)

        bp.add_url_rule(quart_path, endpoint=fn.__name__, view_func=view, methods=[method])
        OPERATIONS.append(Operation(method=method, path=full, operation_id=fn.__name__,
                                    summary=summary, tag=tag, body=body, body_required=body_required,
                                    responses=responses, query=tuple(query), auth=auth))
        return view

    return deco
