"""Serves the embeddable web widget (``/widget.js``, ``/widget-worklet.js``) and the ``/demo`` page.

Everything is local (no CDN). The scripts are cacheable for a few minutes and revalidated by ETag,
so an upgrade reaches embedding sites quickly; both carry ``Access-Control-Allow-Origin: *`` because
``audioWorklet.addModule`` fetches the worklet in CORS mode when the widget is embedded on another
origin. The demo page is rendered per request and never cached.

``/demo`` picks its target in this order:
  1. query parameters ``?agent=ID`` or ``?flow=ID`` (and optionally ``&gateway=ws://HOST:PORT``);
  2. ``app.config["CONVERSE_DEMO_TARGET"]`` if set: an async callable returning
     ``("agent"|"flow", id)`` or ``None``;
  3. the control plane's store (``app.config["CONVERSE_STATE"]``): the oldest active web channel
     whose target is an ``echo`` agent (``converse up`` creates one);
and the gateway URL from ``?gateway=``, else ``app.config["CONVERSE_GATEWAY_PUBLIC_URL"]``, else the
settings' ``gateway_public_url``, else the request's host on port 8080.
"""
from __future__ import annotations

import hashlib
import html
import pathlib
import re

import msgspec
from quart import Blueprint, current_app, render_template, request, Response

STATIC = pathlib.Path(__file__).resolve().parent.parent / "static"
TEMPLATES = pathlib.Path(__file__).resolve().parent.parent / "templates"

SCRIPTS = ("widget.js", "widget-worklet.js")
SCRIPT_TYPE = "text/javascript; charset=utf-8"     # RFC 9239
SCRIPT_MAX_AGE_S = 300
DEFAULT_GATEWAY_PORT = 8080

# Ids and URLs are echoed into the page (autoescaped anyway); refuse anything that isn't plainly one.
_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_GATEWAY_RE = re.compile(r"^wss?://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._~/-]*)?$")

widget_bp = Blueprint("widget", __name__, template_folder=str(TEMPLATES))


class DemoTarget(msgspec.Struct, frozen=True):
    kind: str      # "agent" | "flow"
    id: str


class _Cached(msgspec.Struct):
    mtime_ns: int
    body: bytes
    etag: str


_cache: dict[str, _Cached] = {}


def _load(name: str) -> _Cached:
    """The file's bytes and ETag, re-read only when it changes on disk (cheap during development)."""
    path = STATIC / name
    mtime = path.stat().st_mtime_ns
    hit = _cache.get(name)
    if hit is None or hit.mtime_ns != mtime:
        body = path.read_bytes()
        hit = _Cached(mtime, body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
        _cache[name] = hit
    return hit


def _script_response(name: str) -> Response:
    item = _load(name)
    headers = {
        "Content-Type": SCRIPT_TYPE,
        "Cache-Control": f"public, max-age={SCRIPT_MAX_AGE_S}",
        "ETag": item.etag,
        "Access-Control-Allow-Origin": "*",
        "X-Content-Type-Options": "nosniff",
    }
    if item.etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
        return Response(b"", status=304, headers=headers)
    return Response(item.body, status=200, headers=headers)


def embed_snippet(control_url: str, gateway_url: str, kind: str, target_id: str) -> str:
    """The one-line ``<script>`` tag an operator pastes into a page (what the admin console shows).

    ``control_url`` is where this blueprint is reachable (serves /widget.js), ``gateway_url`` the
    gateway's public ``ws(s)://`` base, ``kind`` "agent" or "flow"."""
    if kind not in ("agent", "flow"):
        raise ValueError("kind must be 'agent' or 'flow'")
    a = html.escape
    return (f'<script src="{a(control_url.rstrip("/"))}/widget.js" data-gateway="{a(gateway_url.rstrip("/"))}" '
            f'data-{kind}="{a(target_id)}"></script>')


@widget_bp.get("/widget.js")
async def widget_js() -> Response:
    return _script_response("widget.js")


@widget_bp.get("/widget-worklet.js")
async def widget_worklet_js() -> Response:
    return _script_response("widget-worklet.js")


def _error(status: int, message: str) -> Response:
    return Response(msgspec.json.encode({"error": {"code": "bad_request", "message": message}}),
                    status=status, content_type="application/json")


def _default_gateway() -> str:
    configured = current_app.config.get("CONVERSE_GATEWAY_PUBLIC_URL")
    if not configured:
        app_state = current_app.config.get("CONVERSE_STATE")
        configured = getattr(getattr(app_state, "settings", None), "gateway_public_url", None)
    if configured:
        return str(configured).rstrip("/")
    scheme = "wss" if request.scheme == "https" else "ws"
    host = request.host.rsplit(":", 1)[0] if not request.host.endswith("]") else request.host
    return f"{scheme}://{host}:{DEFAULT_GATEWAY_PORT}"


def _first_echo_web_target(tx) -> tuple[str, str] | None:
    from control.store import repo   # only when running inside the control plane

    echo = {a.id for a in repo.list_agents(tx) if a.kind == "echo"}
    for channel in repo.list_channels(tx, status="active", type="web"):
        if channel.agent_id in echo:
            return ("agent", channel.agent_id)
    return None


async def _discover_target() -> DemoTarget | None:
    finder = current_app.config.get("CONVERSE_DEMO_TARGET")
    if finder is None:
        app_state = current_app.config.get("CONVERSE_STATE")
        if app_state is None:
            return None
        found = await app_state.store.read(_first_echo_web_target)
    else:
        found = await finder()
    if not found:
        return None
    kind, target_id = found
    return DemoTarget(kind, str(target_id))


@widget_bp.get("/demo")
async def demo() -> Response:
    args = request.args
    target = None
    for kind in ("agent", "flow"):
        value = args.get(kind)
        if value is not None:
            if not _ID_RE.match(value):
                return _error(400, f"{kind} must be an id (letters, digits, _ . : -)")
            target = DemoTarget(kind, value)
            break
    gateway = args.get("gateway")
    if gateway is not None and not _GATEWAY_RE.match(gateway):
        return _error(400, "gateway must be a ws:// or wss:// URL")
    if target is None:
        target = await _discover_target()
    gateway = (gateway or _default_gateway()).rstrip("/")
    snippet = embed_snippet(request.host_url, gateway, target.kind, target.id) if target else ""
    page = await render_template(
        "demo.html", target=target, gateway=gateway, snippet=snippet,
        widget_src="/widget.js", dtmf=args.get("dtmf") == "1")
    return Response(page, status=200 if target else 404, headers={
        "Content-Type": "text/html; charset=utf-8",
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    })
