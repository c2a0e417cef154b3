"""Routes of the console blueprint: login/logout, the pages, and the API bridge."""
from __future__ import annotations

import re
import urllib.parse

import msgspec
from quart import Response, current_app, g, redirect, render_template, request

from control.api.errors import ApiError, json_response
from control.api.state import state
from control.console import bridge, catalog
from control.console.blueprint import bp
from control.console import session as sess
from control.store import hash_api_key, repo


PUBLIC_ENDPOINTS = {"console.login", "console.login_post", "console.static"}
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
MAX_KEY_CHARS = 256


def _secret() -> bytes:
    cached = current_app.config.get("CONVERSE_CONSOLE_SECRET")
    if cached is None:
        key = state().settings.secret_key
        if not key:
            raise ApiError(503, "unavailable", "the console needs the control plane's secret key "
                           "(CONVERSE_SECRET_KEY or its key file)")
        cached = current_app.config["CONVERSE_CONSOLE_SECRET"] = sess.console_secret(key)
    return cached


def _secure() -> bool:
    return request.scheme == "https" or request.headers.get("X-Forwarded-Proto") == "https"


def _set_cookie(response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/console", httponly=True,
                        samesite="Strict", secure=_secure())


def _is_api() -> bool:
    return request.path.startswith("/console/api/") or request.accept_mimetypes.best == \
        "application/json"


def _safe_next(target: str | None) -> str:
    """Only a path inside the console (no scheme, no host): never an open redirect."""
    if target and target.startswith("/console/") and not target.startswith("//") \
            and not any(c in target for c in "\\\r\n"):
        return target
    return "/console/channels"


# ------------------------------------------------------------------------------ guards
@bp.before_request
async def _require_session():
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    data = sess.verify(_secret(), request.cookies.get(sess.SESSION_COOKIE))
    key = None
    if data is not None:
        keys = await state().store.read(repo.list_api_keys)
        key = next((k for k in keys if k.id == data.kid and k.revoked_at is None), None)
    if key is None:
        if _is_api():
            raise ApiError(401, "unauthorized", "log in to the console first")
        nxt = request.full_path if request.method == "GET" else "/console/channels"
        return redirect("/console/login?next=" + urllib.parse.quote(nxt.rstrip("?"), safe="/"))
    g.console_session, g.console_key = data, key
    g.api_key_id = key.id
    if request.method in UNSAFE_METHODS:
        form = await request.form if request.mimetype == "application/x-www-form-urlencoded" else {}
        presented = request.headers.get("X-CSRF-Token") or form.get("csrf_token")
        if not sess.csrf_ok(_secret(), data.nonce, presented):
            raise ApiError(403, "csrf", "missing or wrong CSRF token; reload the page")
    return None


@bp.after_request
async def _headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "console.static":
        response.headers["Cache-Control"] = "no-store"
    return response


# The API's status_detail speaks in API calls; the console says the same in its own buttons.
_PHRASES = [
    (re.compile(r"POST /api/v1/channels/[\w-]+/activate to"), "Activate to"),
    (re.compile(r"POST /api/v1/channels/[\w-]+/verify"), "Re-verify"),
    (re.compile(r"\s*\(GET /api/v1/channels/[\w-]+/numbers, then PATCH phone_number\)"), ""),
    (re.compile(r"\s*\((?:agent_id|flow_id|allowed_origins|PATCH phone_number)\)"), ""),
]


def humanize(detail: str | None) -> str:
    text = detail or ""
    for pattern, words in _PHRASES:
        text = pattern.sub(words, text)
    return text[:1].upper() + text[1:]


bp.add_app_template_filter(humanize, "humanize")

SECTIONS = {"channels": "Channels", "wizard": "Channels", "channel": "Channels",
            "agents": "Agents", "agent": "Agents", "flows": "Flows", "flow": "Flows",
            "activity": "Activity"}


async def _page(template: str, **context) -> str:
    data = g.get("console_session")
    return await render_template(
        f"console/{template}", csrf=sess.csrf_token(_secret(), data.nonce) if data else "",
        key_name=g.console_key.name if g.get("console_key") else "",
        section=SECTIONS.get(template.removesuffix(".html"), ""), **context)


# ------------------------------------------------------------------------------- login
@bp.get("/login")
async def login():
    nonce = request.cookies.get(sess.LOGIN_COOKIE) or sess.new_login_nonce()
    body = await render_template("console/login.html", csrf=sess.csrf_token(_secret(), nonce),
                                 next=_safe_next(request.args.get("next")), error=None)
    response = Response(body, content_type="text/html; charset=utf-8")
    _set_cookie(response, sess.LOGIN_COOKIE, nonce, sess.LOGIN_TTL_S)
    return response


@bp.post("/login")
async def login_post():
    form = await request.form
    nonce = request.cookies.get(sess.LOGIN_COOKIE)
    if not sess.csrf_ok(_secret(), nonce, form.get("csrf_token")):
        raise ApiError(403, "csrf", "missing or wrong CSRF token; reload the login page")
    key = (form.get("api_key") or "").strip()
    row = None
    if key and len(key) <= MAX_KEY_CHARS:
        row = await state().store.read(repo.find_api_key, hash_api_key(key))
    if row is None or row.revoked_at is not None:
        error = "That API key is not valid." if row is None else "That API key has been revoked."
        body = await render_template("console/login.html", csrf=sess.csrf_token(_secret(), nonce),
                                     next=_safe_next(form.get("next")), error=error)
        return Response(body, status=401, content_type="text/html; charset=utf-8")
    value, _ = sess.issue(_secret(), row.id)
    response = redirect(_safe_next(form.get("next")), 303)
    _set_cookie(response, sess.SESSION_COOKIE, value, sess.SESSION_TTL_S)
    response.delete_cookie(sess.LOGIN_COOKIE, path="/console")
    return response


@bp.post("/logout")
async def logout():
    response = redirect("/console/login", 303)
    response.delete_cookie(sess.SESSION_COOKIE, path="/console")
    return response


# ------------------------------------------------------------------------------- pages
@bp.get("/")
async def home():
    return redirect("/console/channels")


async def _record(what: str, ident: str) -> dict | None:
    """The API's ``/{what}s/{ident}``, or None when it answers 404 (other errors propagate)."""
    try:
        return await bridge.get_json(f"/api/v1/{what}s/{ident}")
    except ApiError as exc:
        if exc.status != 404:
            raise
        return None


async def _missing(what: str, ident: str):
    return await _page("missing.html", what=what, ident=ident), 404


async def _targets() -> tuple[list, list]:
    agents = (await bridge.get_json("/api/v1/agents"))["items"]
    flows = (await bridge.get_json("/api/v1/flows"))["items"]
    return agents, flows


@bp.get("/channels")
async def channels():
    # ?status=&type= reach the API handler as they are (it reads this request's query string).
    try:
        items = (await bridge.get_json("/api/v1/channels"))["items"]
    except ApiError as exc:
        if exc.status != 422:
            raise
        return redirect("/console/channels")
    agents, flows = await _targets()
    names = {a["id"]: a["name"] for a in agents} | {f["id"]: f["name"] for f in flows}
    from control.console.activity import live_counts
    return await _page("channels.html", channels=items, names=names,
                       titles=catalog.PROVIDER_TITLES, live=live_counts(),
                       status=request.args.get("status", ""), ctype=request.args.get("type", ""))


@bp.get("/channels/new")
async def new_channel():
    agents, flows = await _targets()
    return await _page("wizard.html", forms=catalog.FORMS, agents=agents, flows=flows)


@bp.get("/channels/<channel_id>")
async def channel(channel_id: str):
    ch = await _record("channel", channel_id)
    if ch is None:
        return await _missing("channel", channel_id)
    agents, flows = await _targets()
    names = {a["id"]: a["name"] for a in agents} | {f["id"]: f["name"] for f in flows}
    snippet = None
    if ch["type"] == "web" and (ch["agent_id"] or ch["flow_id"]):
        from control.api.widget import embed_snippet
        # the gateway `converse up` runs (as the demo page), else the configured public one
        gateway = current_app.config.get("CONVERSE_GATEWAY_PUBLIC_URL") or \
            state().settings.gateway_public_url
        kind = "agent" if ch["agent_id"] else "flow"
        snippet = embed_snippet(request.host_url, gateway, kind, ch["agent_id"] or ch["flow_id"])
    form = catalog.BY_KEY.get(f"{ch['type']}:{ch['provider'] or 'none'}")
    return await _page("channel.html", ch=ch, names=names, agents=agents, flows=flows, form=form,
                       titles=catalog.PROVIDER_TITLES, snippet=snippet)


@bp.get("/agents")
async def agents():
    items = (await bridge.get_json("/api/v1/agents"))["items"]
    return await _page("agents.html", agents=items)


@bp.get("/agents/new")
@bp.get("/agents/<agent_id>")
async def agent(agent_id: str | None = None):
    item = None
    if agent_id is not None:
        item = await _record("agent", agent_id)
        if item is None:
            return await _missing("agent", agent_id)
    return await _page("agent.html", agent=item)


@bp.get("/flows")
async def flows():
    items = (await bridge.get_json("/api/v1/flows"))["items"]
    return await _page("flows.html", flows=items)


@bp.get("/flows/new")
@bp.get("/flows/<flow_id>")
async def flow(flow_id: str | None = None):
    item = None
    if flow_id is not None:
        item = await _record("flow", flow_id)
        if item is None:
            return await _missing("flow", flow_id)
    definition = item["definition"] if item else {"start": "start", "nodes": {
        "start": {"type": "entry", "next": "hello"},
        "hello": {"type": "speak", "text": "Hello!", "next": "bye"},
        "bye": {"type": "end", "reason": "completed"}}}
    simulate = bool(item) and bridge.has_route(f"/api/v1/flows/{item['id']}/simulate", "POST")
    return await _page("flow.html", flow=item, simulate=simulate,
                       definition=msgspec.json.format(msgspec.json.encode(definition), indent=2)
                       .decode())


@bp.post("/flows/check")
async def flow_check():
    """The flow engine's validator, for the editor: errors as ``{node, path, message}``."""
    from gateway.flows import FlowValidationError, errors_as_json, validate
    raw = await request.get_data(cache=True)
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        return json_response({"ok": False, "errors": [
            {"node": None, "path": "$", "message": f"not valid JSON: {exc}"}]})
    definition = body.get("definition") if isinstance(body, dict) else None
    try:
        validate(definition)
    except FlowValidationError as exc:
        return json_response({"ok": False, "errors": errors_as_json(exc)})
    return json_response({"ok": True, "errors": []})


@bp.get("/activity")
async def activity():
    from control.console import activity as act
    items = (await bridge.get_json("/api/v1/channels"))["items"]
    await act.ensure(state().store)
    rows = await state().store.read(act.recent, request.args.get("channel") or None)
    return await _page("activity.html", sessions=[act.view(r) for r in rows], channels=items,
                       chosen=request.args.get("channel") or "",
                       chart=act.latency_chart(rows))


# ---------------------------------------------------------------------------- the bridge
@bp.route("/api/v1/<path:rest>", methods=["GET", "POST", "PATCH", "DELETE"])
async def api(rest: str):
    return await bridge.dispatch(f"{bridge.API_PREFIX}/{rest}", request.method)
