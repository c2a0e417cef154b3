"""The console's guards over plain HTTP against the live control plane (SQLite and PostgreSQL):
every page needs a login, every state change needs the session's CSRF token, the cookie is
signed, HttpOnly and SameSite=Strict and never carries the key, revoking the key ends the session,
and only the channel/agent/flow operations are reachable through the console's API bridge."""
from __future__ import annotations

import re

import httpx
import pytest

from control.console import session as sess


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html) or \
        re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert m, html[:500]
    return m.group(1)


def _login(base_url: str, key: str) -> tuple[httpx.Client, str]:
    """A logged-in client and its session's CSRF token."""
    c = httpx.Client(base_url=base_url, timeout=30)
    token = _csrf(c.get("/console/login").text)
    r = c.post("/console/login",
               data={"csrf_token": token, "api_key": key, "next": "/console/agents"})
    assert r.status_code == 303 and r.headers["location"] == "/console/agents", r.text
    return c, _csrf(c.get("/console/agents").text)


@pytest.fixture
def console(control_server):
    c, token = _login(control_server.base_url, control_server.api_key)
    try:
        yield c, token
    finally:
        c.close()


@pytest.mark.parametrize("path", ["/console/channels", "/console/channels/new", "/console/agents",
                                  "/console/flows/new", "/console/activity", "/console/channels/x"])
def test_pages_need_login(control_server, path):
    r = httpx.get(control_server.base_url + path, timeout=30)
    assert r.status_code == 302
    assert r.headers["location"].startswith("/console/login?next=" + path)


def test_bridge_needs_login_and_session_cookie_is_checked(control_server):
    base = control_server.base_url
    r = httpx.post(base + "/console/api/v1/agents", json={"name": "x", "kind": "echo"}, timeout=30)
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    forged = "eyJraWQiOiJrZXlfMSIsImV4cCI6OTk5OTk5OTk5OSwibm9uY2UiOiJ4In0.AAAA"
    r = httpx.get(base + "/console/api/v1/agents", cookies={sess.SESSION_COOKIE: forged},
                  timeout=30)
    assert r.status_code == 401


def test_login_form_needs_its_csrf_token_and_a_valid_key(control_server):
    with httpx.Client(base_url=control_server.base_url, timeout=30) as c:
        token = _csrf(c.get("/console/login").text)
        r = c.post("/console/login", data={"api_key": control_server.api_key})
        assert r.status_code == 403 and sess.SESSION_COOKIE not in r.headers.get("set-cookie", "")
        r = c.post("/console/login", data={"csrf_token": token, "api_key": "cvk_wrong"})
        assert r.status_code == 401 and "not valid" in r.text
        # Off-site "next" is ignored: never an open redirect.
        r = c.post("/console/login", data={"csrf_token": token, "api_key": control_server.api_key,
                                           "next": "//evil.example/x"})
        assert r.status_code == 303 and r.headers["location"] == "/console/channels"
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
        assert control_server.api_key not in cookie


def test_state_changes_need_the_sessions_csrf_token(control_server, console):
    client, token = console
    body = {"name": "csrf test", "kind": "echo"}
    r = client.post("/console/api/v1/agents", json=body)
    assert r.status_code == 403 and r.json()["error"] == "csrf"
    forged = ("y" if token[0] == "x" else "x") + token[1:]     # "x" + token[1:] IS the token 1 time in 64
    r = client.post("/console/api/v1/agents", json=body, headers={"X-CSRF-Token": forged})
    assert r.status_code == 403
    other, other_token = _login(control_server.base_url, control_server.api_key)
    other.close()
    r = client.post("/console/api/v1/agents", json=body, headers={"X-CSRF-Token": other_token})
    assert r.status_code == 403                      # a token of another session does not pass
    r = client.post("/console/logout")
    assert r.status_code == 403                      # logout is a state change too
    r = client.post("/console/api/v1/agents", json=body, headers={"X-CSRF-Token": token})
    assert r.status_code == 201 and r.json()["name"] == "csrf test"
    agent = r.json()["id"]
    r = client.delete(f"/console/api/v1/agents/{agent}")
    assert r.status_code == 403
    r = client.delete(f"/console/api/v1/agents/{agent}", headers={"X-CSRF-Token": token})
    assert r.status_code == 204


def test_bridge_gives_the_apis_own_answers(control_server, console):
    client, token = console
    h = {"X-CSRF-Token": token}
    r = client.post("/console/api/v1/channels", headers=h, json={
        "type": "voice", "provider": "twilio", "credentials": {"account_sid": "AC1"}})
    assert r.status_code == 422 and r.json()["field"] == "$.credentials.auth_token"
    r = client.post("/console/api/v1/channels", headers=h, json={
        "type": "voice", "provider": "twilio",
        "credentials": dict(control_server.twilio.creds, auth_token="0" * 32)})
    assert r.status_code == 422 and r.json()["provider"] == "twilio"
    assert "Authenticate" in r.json()["message"]
    assert client.get("/console/api/v1/channels/ch_nope").status_code == 404
    # Keys and provider webhooks are not reachable with a console session.
    assert client.get("/console/api/v1/keys").status_code == 404
    assert client.post("/console/api/v1/keys", headers=h, json={"name": "x"}).status_code == 404
    assert client.get("/console/api/v1/webhooks/meta/ch_x").status_code == 404


def test_logout_and_revocation_end_the_session(control_server):
    key = control_server.create_key("console-revoke")
    client, token = _login(control_server.base_url, key)
    assert client.get("/console/channels").status_code == 200
    with control_server.client() as api:
        key_id = next(k["id"] for k in api.get("/api/v1/keys").json()["items"]
                      if k["name"] == "console-revoke")
        assert api.delete(f"/api/v1/keys/{key_id}").status_code in (200, 204)
    r = client.get("/console/channels")
    assert r.status_code == 302 and "/console/login" in r.headers["location"]
    client.close()
    client, token = _login(control_server.base_url, control_server.api_key)
    r = client.post("/console/logout", data={"csrf_token": token})
    assert r.status_code == 303
    assert client.get("/console/channels").status_code == 302
    client.close()


def test_pages_render_and_carry_security_headers(control_server, console):
    client, _ = console
    for path in ["/console/channels", "/console/channels/new", "/console/agents",
                 "/console/agents/new", "/console/flows", "/console/flows/new",
                 "/console/activity"]:
        r = client.get(path)
        assert r.status_code == 200, (path, r.text[:300])
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["cache-control"] == "no-store"
    for what in ("channel", "agent", "flow"):
        r = client.get(f"/console/{what}s/x_missing")
        assert r.status_code == 404 and f"There is no {what} with id" in r.text, what
    assert client.get("/console/static/console.js").status_code == 200


def test_session_cookie_unit():
    secret = sess.console_secret(b"k" * 32)
    value, data = sess.issue(secret, "key_1", now=1000, ttl_s=60)
    assert sess.verify(secret, value, now=1059) == data
    assert sess.verify(secret, value, now=1060) is None                   # expired
    assert sess.verify(sess.console_secret(b"j" * 32), value, now=1000) is None
    payload, mac = value.split(".")
    assert sess.verify(secret, payload[:-2] + "xx." + mac, now=1000) is None
    for garbage in ["", ".", "a.b.c", "x" * 5000, "!!!.???"]:
        assert sess.verify(secret, garbage, now=1000) is None
    assert sess.csrf_ok(secret, data.nonce, sess.csrf_token(secret, data.nonce))
    assert not sess.csrf_ok(secret, data.nonce, None)
    assert not sess.csrf_ok(secret, "other", sess.csrf_token(secret, data.nonce))


def test_exotel_channel_page_shows_the_url_to_paste(control_server, console):
    client, token = console
    h = {"X-CSRF-Token": token}
    agent = client.post("/console/api/v1/agents", headers=h,
                        json={"name": "ex", "kind": "echo"}).json()
    r = client.post("/console/api/v1/channels", headers=h, json={
        "type": "voice", "provider": "exotel", "name": "Exotel line",
        "credentials": control_server.exotel.creds, "agent_id": agent["id"]})
    assert r.status_code == 201, r.text
    ch = r.json()
    numbers = client.get(f"/console/api/v1/channels/{ch['id']}/numbers").json()["items"]
    r = client.patch(f"/console/api/v1/channels/{ch['id']}", headers=h,
                     json={"phone_number": numbers[0]["number"]})
    assert r.status_code == 200, r.text
    r = client.post(f"/console/api/v1/channels/{ch['id']}/activate", headers=h)
    assert r.status_code == 200, r.text
    page = client.get(f"/console/channels/{ch['id']}").text
    assert "Voicebot URL" in page and f'value="{ch["webhook_url"]}"' in page
    listing = client.get("/console/channels").text
    assert "Exotel line" in listing and "Exotel" in listing
    assert f'badge-{r.json()["status"]}' in listing
    assert "Exotel line" in client.get("/console/channels?type=voice").text
    assert "Exotel line" not in client.get("/console/channels?type=web").text
    r2 = client.get("/console/channels?status=bogus")          # the API's 422: back to all
    assert r2.status_code == 302 and r2.headers["location"] == "/console/channels"
    client.delete(f"/console/api/v1/channels/{ch['id']}", headers=h)
    client.delete(f"/console/api/v1/agents/{agent['id']}", headers=h)


def test_wizard_asks_for_each_providers_own_fields():
    """Every credential the API requires has a field (with the provider's label) in the wizard."""
    from control import models
    from control.console import catalog
    from control.providers import provider_class

    for form in catalog.FORMS:
        names = {f.name for f in form.fields}
        if form.provider is None:
            assert form.type == "web" and not names
            continue
        required = set(provider_class(form.provider).credential_fields)
        if form.type == "whatsapp":
            required |= set(models.WHATSAPP_EXTRA_FIELDS)
        assert required <= names, (form.key, required - names)
        assert form.provider in models.PROVIDERS_BY_TYPE[form.type]
    labels = {f.label for f in catalog.BY_KEY["whatsapp:meta"].fields}
    assert {"Permanent Access Token", "Phone Number ID", "App Secret", "Verify Token"} <= labels
