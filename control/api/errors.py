"""One error shape for the whole API, and the body decoder that produces 422s naming the field.

Handlers raise :class:`ApiError`; everything else that escapes becomes a JSON 500 with no detail
(the exception is logged server-side, never returned).
"""
from __future__ import annotations

import logging
import re
import traceback
from typing import Any, TypeVar

import msgspec
from quart import Response, request
from werkzeug.exceptions import HTTPException

from control import models

log = logging.getLogger("converse.api")
T = TypeVar("T")

# Meta documents webhook batches of up to 3 MB; a 413 there would be redelivered for a week.
MAX_BODY_BYTES = 4 << 20


class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str, *, field: str | None = None,
                 fields: list[str] | None = None, provider: str | None = None,
                 channels: list[str] | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.body = models.Error(error=error, message=message, field=field, fields=fields,
                                 provider=provider, channels=channels)
        self.headers = headers or {}


def validation(message: str, field: str, **kw) -> ApiError:
    return ApiError(422, "validation", message, field=field, **kw)


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(404, "not_found", f"no {what} with id {ident!r}")


def conflict(message: str, **kw) -> ApiError:
    return ApiError(409, "conflict", message, **kw)


def json_response(obj: Any, status: int = 200, headers: dict | None = None) -> Response:
    return Response(msgspec.json.encode(obj), status=status, headers=headers,
                    content_type="application/json")


def error_response(exc: ApiError) -> Response:
    return json_response(exc.body, exc.status, exc.headers)


_AT = re.compile(r"^(?P<msg>.*?)(?: - at `(?P<path>\$[^`]*)`)?$", re.S)
_FIELD = re.compile(r"(?:missing required field|unknown field) `([^`]+)`")


def field_path(err: msgspec.ValidationError) -> tuple[str, str]:
    """msgspec says "Expected `str`, got `int` - at `$.a.b`" or "Object missing required field
    `x` - at `$.a`": return (message, path to the offending field)."""
    m = _AT.match(str(err))
    msg, path = m.group("msg"), m.group("path") or "$"
    missing = _FIELD.search(msg)
    if missing:
        path = f"{path}.{missing.group(1)}"
    return msg, path


def check_string_map(raw: Any, key: str, *, prefix: str = "$", max_len: int = 4096) -> None:
    """msgspec reports a bad dict value as ``$.credentials[...]``; the API promises the key
    (``$.credentials.auth_token``), so string maps are checked by hand first."""
    if not isinstance(raw, dict) or not isinstance(raw.get(key), dict):
        return
    for k, v in raw[key].items():
        if not isinstance(v, str):
            raise validation(f"must be a string, got {type(v).__name__}", f"{prefix}.{key}.{k}")
        if len(v) > max_len:
            raise validation(f"longer than {max_len} characters", f"{prefix}.{key}.{k}")


NO_BODY = object()


async def read_json(*, required: bool = True) -> Any:
    """The decoded JSON body; ``NO_BODY`` when it is empty and optional."""
    data = await request.get_data(cache=True)
    if len(data) > MAX_BODY_BYTES:
        raise ApiError(413, "too_large", f"request body over {MAX_BODY_BYTES} bytes")
    if not data.strip():
        if required:
            raise validation("a JSON body is required", "$")
        return NO_BODY
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise validation(f"body is not valid JSON: {exc}", "$") from None
    except RecursionError:              # hostile nesting ends msgspec in Python's recursion limit
        raise validation("body is not valid JSON: nested too deeply", "$") from None


def convert(raw: Any, typ: type[T], *, prefix: str = "$") -> T:
    try:
        return msgspec.convert(raw, typ, strict=True)
    except msgspec.ValidationError as exc:
        msg, path = field_path(exc)
        raise validation(msg, prefix + path[1:]) from None


async def handle_http_exception(exc: HTTPException) -> Response:
    code = exc.code or 500
    kind = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(code, "http")
    # Keep the exception's own headers (405 carries Allow, as RFC 9110 requires).
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    return json_response(models.Error(error=kind, message=exc.description or exc.name), code, headers)


async def handle_unexpected(exc: Exception) -> Response:
    # The frames, not the message: an exception's text may quote a credential or a payload.
    log.error("unhandled error on %s %s: %s\n%s", request.method, request.path,
              type(exc).__name__, "".join(traceback.format_tb(exc.__traceback__)).rstrip())
    return json_response(models.Error(error="internal", message="internal error"), 500)


async def handle_store_error(exc: Exception) -> Response:
    log.error("database unavailable on %s %s: %s", request.method, request.path, exc)
    return json_response(models.Error(error="unavailable", message="the database is unavailable; "
                                      "retry shortly"), 503, {"Retry-After": "1"})


def install(app) -> None:
    from control.store import StoreError
    app.register_error_handler(ApiError, error_response)
    app.register_error_handler(StoreError, handle_store_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)
