"""The console calls the REST API's own handlers, in-process: one service layer, one set of rules.

``/console/api/v1/<path>`` (session cookie + CSRF instead of a Bearer key) is matched against the
app's real ``/api/v1`` routes and dispatched to the very view function the API serves, so body
decoding (msgspec, 422 naming the field), provider verification, webhook configuration, status
transitions and error bodies are exactly the API's. Only the channel, agent and flow operations are
reachable this way (not keys, not provider webhooks). The API blueprints' own ``before_request``
hooks (the Bearer check) are not run: the console's session check stands in for them.
"""
from __future__ import annotations

from typing import Any

import msgspec
from quart import Response, current_app
from werkzeug.exceptions import MethodNotAllowed, NotFound

from control.api.errors import ApiError

API_PREFIX = "/api/v1"
# Resources the console may call (the keys API and provider webhooks stay Bearer/provider only),
# whichever blueprint serves them (e.g. a flow simulator added later).
ALLOWED_PREFIXES = ("/api/v1/channels", "/api/v1/agents", "/api/v1/flows")


def resolve(path: str, method: str) -> tuple[Any, dict]:
    """(view function, view args) of the API route serving ``method path``; ApiError 404/405."""
    adapter = current_app.url_map.bind("console.invalid")
    try:
        endpoint, args = adapter.match(path, method=method)
    except NotFound:
        raise ApiError(404, "not_found", f"no API route {path}") from None
    except MethodNotAllowed:
        raise ApiError(405, "method_not_allowed", f"{method} is not allowed on {path}") from None
    if not any(path == p or path.startswith(p + "/") for p in ALLOWED_PREFIXES) \
            or endpoint.startswith("console."):
        raise ApiError(404, "not_found", f"{path} is not available from the console")
    return current_app.view_functions[endpoint], args


async def dispatch(path: str, method: str) -> Response:
    """Run the API handler for ``method path`` inside the current request (its body and query
    string are the console request's) and return its response."""
    view, args = resolve(path, method)
    return await current_app.make_response(await view(**args))


async def get_json(path: str) -> Any:
    """GET an API resource from a page handler; ApiError when the API answers an error."""
    response = await dispatch(path, "GET")
    body = await response.get_data()
    if response.status_code >= 400:
        err = msgspec.json.decode(body) if body else {}
        raise ApiError(response.status_code, err.get("error", "error"), err.get("message", ""))
    return msgspec.json.decode(body)


def has_route(path: str, method: str) -> bool:
    try:
        resolve(path, method)
    except ApiError:
        return False
    return True
