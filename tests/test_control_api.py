"""The control API over a live Hypercorn (``converse control`` subprocess), on SQLite and on
PostgreSQL, with the provider emulators behind it (tests/fixtures_control.py)."""
from __future__ import annotations

import secrets
import urllib.parse

import httpx
import pytest

from gateway import tokens


def _field(resp: httpx.Response) -> str | None:
    return resp.json().get("field")


@pytest.fixture
def api(control_server):
    with control_server.client() as client:
        yield client


def _agent(api, name="echo") -> str:
    r = api.post("/api/v1/agents", json={"name": name, "kind": "echo"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _flow(api) -> str:
    r = api.post("/api/v1/flows", json={"name": "f", "definition": {"name": "f", "start": "a",
                                                                     "nodes": {"a": {"type": "entry", "next": "b"},
                                                                               "b": {"type": "end"}}}})
    assert r.status_code == 201, r.text
    return r.json()["id"]


# ------------------------------------------------------------------------------- basics, auth
def test_healthz_and_openapi_routes(control_server):
    assert httpx.get(control_server.base_url + "/healthz").json() == {"status": "ok", "database": "ok"}
    doc = httpx.get(control_server.base_url + "/api/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    for path, method in [("/api/v1/channels", "post"), ("/api/v1/channels/{channel_id}", "patch"),
                         ("/api/v1/channels/{channel_id}/numbers", "get"),
                         ("/api/v1/channels/{channel_id}/activate", "post"),
                         ("/api/v1/channels/{channel_id}/deactivate", "post"),
                         ("/api/v1/channels/{channel_id}/verify", "post"),
                         ("/api/v1/channels/{channel_id}/session-url", "post"),
                         ("/api/v1/agents/{agent_id}", "delete"), ("/api/v1/flows", "post"),
                         ("/api/v1/webhooks/{provider}/{channel_id}", "get")]:
        assert method in doc["paths"][path], (path, method)
    assert "ChannelCreate" in doc["components"]["schemas"]


@pytest.mark.parametrize("header", [None, "Basic abc", "Bearer", "Bearerxyz", "bearer a b"])
def test_missing_or_malformed_key_is_401(control_server, header):
    headers = {"Authorization": header} if header is not None else {}
    r = httpx.get(control_server.base_url + "/api/v1/channels", headers=headers)
    assert r.status_code == 401
    assert r.json()["error"] == "unauthorized"
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_unknown_and_revoked_keys_are_403(control_server, api):
    with control_server.client("cvk_" + secrets.token_urlsafe(32)) as other:
        assert other.get("/api/v1/agents").status_code == 403
    created = api.post("/api/v1/keys", json={"name": "temp"}).json()
    with control_server.client(created["key"]) as temp:
        assert temp.get("/api/v1/agents").status_code == 200
        assert api.delete(f"/api/v1/keys/{created['id']}").status_code == 204
        r = temp.get("/api/v1/agents")
        assert r.status_code == 403 and "revoked" in r.json()["message"]
    listed = api.get("/api/v1/keys").json()["items"]
    assert created["key"] not in str(listed)


def test_cli_key_works(control_server):
    key = control_server.cli("keys", "create", "from-cli").stdout.strip()
    assert key.startswith("cvk_")
    with control_server.client(key) as c:
        assert c.get("/api/v1/channels").status_code == 200
        listed = c.get("/api/v1/keys").json()["items"]
    assert "from-cli" in [k["name"] for k in listed] and key not in str(listed)


# --------------------------------------------------------------------------- agents and flows
def test_agent_crud_and_validation(api):
    r = api.post("/api/v1/agents", json={"name": "ws", "kind": "websocket",
                                         "config": {"url": "wss://agent.example/ws",
                                                    "headers": {"Authorization": "Bearer s3cr3t-agent-key-123"}}})
    assert r.status_code == 201, r.text
    agent = r.json()
    assert "s3cr3t-agent-key-123" not in r.text
    assert api.get(f"/api/v1/agents/{agent['id']}").json()["config"]["url"] == "wss://agent.example/ws"
    bad = api.post("/api/v1/agents", json={"name": "ws", "kind": "websocket",
                                           "config": {"url": "http://nope"}})
    assert bad.status_code == 422 and _field(bad) == "$.config.url"
    bad = api.post("/api/v1/agents", json={"name": "x", "kind": "http", "config": {"url": "https://a", "timeout_s": "x"}})
    assert bad.status_code == 422 and _field(bad) == "$.config.timeout_s"
    bad = api.post("/api/v1/agents", json={"name": "x", "kind": "telepathy"})
    assert bad.status_code == 422 and _field(bad) == "$.kind"
    bad = api.post("/api/v1/agents", json={"name": "x", "kind": "echo", "bogus": 1})
    assert bad.status_code == 422 and _field(bad) == "$.bogus"
    r = api.patch(f"/api/v1/agents/{agent['id']}", json={"name": "renamed"})
    assert r.status_code == 200 and r.json()["name"] == "renamed"
    assert api.delete(f"/api/v1/agents/{agent['id']}").status_code == 204
    assert api.get(f"/api/v1/agents/{agent['id']}").status_code == 404


def test_flow_validation(api):
    ok = api.post("/api/v1/flows", json={"name": "ok", "definition": {
        "start": "s", "nodes": {"s": {"type": "entry", "next": "e"}, "e": {"type": "end"}}}})
    assert ok.status_code == 201
    for definition, field in [({}, "$.definition.start"), ({"nodes": 3}, "$.definition.start")]:
        r = api.post("/api/v1/flows", json={"name": "x", "definition": definition})
        assert r.status_code == 422 and _field(r) == field
        assert "$.definition.nodes" in [e["path"] for e in r.json()["errors"]]
    r = api.post("/api/v1/flows", json={"name": "x", "definition": []})
    assert r.status_code == 422 and _field(r) == "$.definition"


def test_bad_json_and_unknown_ids(api):
    r = api.post("/api/v1/agents", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"] == "validation"
    for path in ["/api/v1/channels/ch_nope", "/api/v1/agents/nope", "/api/v1/flows/nope"]:
        r = api.get(path)
        assert r.status_code == 404 and r.json()["error"] == "not_found"
    assert api.post("/api/v1/channels/ch_nope/activate").status_code == 404
    assert api.get("/api/v1/no-such-route").json()["error"] == "not_found"


# ------------------------------------------------------------------------------ web channels
def test_web_channel_session_url(control_server, api):
    agent = _agent(api)
    r = api.post("/api/v1/channels", json={"type": "web", "name": "site",
                                           "allowed_origins": ["https://Shop.Example:8443/"]})
    assert r.status_code == 201, r.text
    ch = r.json()
    assert ch["status"] == "setup" and "agent" in ch["status_detail"]
    assert ch["allowed_origins"] == ["https://shop.example:8443"]
    assert api.post(f"/api/v1/channels/{ch['id']}/session-url").status_code == 409
    r = api.patch(f"/api/v1/channels/{ch['id']}", json={"agent_id": agent})
    assert r.json()["status"] == "active", r.text
    r = api.post(f"/api/v1/channels/{ch['id']}/session-url", json={"ttl_s": 60})
    assert r.status_code == 200, r.text
    url = urllib.parse.urlsplit(r.json()["url"])
    assert url.scheme == "wss" and url.netloc == "converse.example.test"
    assert url.path == f"/ws/agent/{agent}"
    token = urllib.parse.parse_qs(url.query)["token"][0]
    claims = tokens.verify(control_server.settings.token_secret, token, "web")
    assert claims["ch"] == ch["id"] and claims["target"] == f"agent:{agent}"
    assert r.json()["expires_at"].endswith("Z")
    # Remove every origin: back to setup, no more session URLs.
    r = api.patch(f"/api/v1/channels/{ch['id']}", json={"allowed_origins": []})
    assert r.json()["status"] == "setup"
    assert api.post(f"/api/v1/channels/{ch['id']}/session-url").status_code == 409


def test_web_channel_flow_target_and_rules(api):
    flow = _flow(api)
    agent = _agent(api)
    r = api.post("/api/v1/channels", json={"type": "web", "flow_id": flow,
                                           "allowed_origins": ["http://localhost:3000"]})
    assert r.json()["status"] == "active"
    ch = r.json()["id"]
    r = api.patch(f"/api/v1/channels/{ch}", json={"agent_id": agent})     # both set now
    assert r.json()["status"] == "setup" and "exactly one" in r.json()["status_detail"]
    r = api.post(f"/api/v1/channels/{ch}/activate")
    assert r.status_code == 422
    assert set(r.json()["fields"]) == {"$.agent_id", "$.flow_id"}
    for body, field in [({"type": "web", "provider": "twilio"}, "$.provider"),
                        ({"type": "web", "allowed_origins": ["ftp://x"]}, "$.allowed_origins[0]"),
                        ({"type": "web", "allowed_origins": ["https://x/path"]}, "$.allowed_origins[0]"),
                        ({"type": "web", "agent_id": "ag_missing"}, "$.agent_id"),
                        ({"type": "fax"}, "$.type"), ({"name": "x"}, "$.type")]:
        r = api.post("/api/v1/channels", json=body)
        assert r.status_code == 422 and _field(r) == field, (body, r.text)
    # Deleting a target still in use names the channel.
    r = api.delete(f"/api/v1/flows/{flow}")
    assert r.status_code == 409 and r.json()["channels"] == [ch]
    assert api.delete(f"/api/v1/channels/{ch}").json()["deleted"] is True
    assert api.delete(f"/api/v1/flows/{flow}").status_code == 204


def test_list_filters(api):
    r = api.post("/api/v1/channels", json={"type": "web"})
    assert r.status_code == 201
    items = api.get("/api/v1/channels", params={"type": "web", "status": "setup"}).json()["items"]
    assert r.json()["id"] in [c["id"] for c in items]
    assert all(c["type"] == "web" and c["status"] == "setup" for c in items)
    assert api.get("/api/v1/channels", params={"status": "bogus"}).status_code == 422


# ------------------------------------------------------------------------- provider channels
def test_twilio_voice_channel_lifecycle(control_server, api):
    tw = control_server.twilio
    before = len(api.get("/api/v1/channels").json()["items"])
    # Rejected credentials: 422 naming the provider, nothing stored.
    r = api.post("/api/v1/channels", json={"type": "voice", "provider": "twilio",
                                           "credentials": {**tw.creds, "auth_token": "0" * 32}})
    assert r.status_code == 422 and r.json()["error"] == "provider" and r.json()["provider"] == "twilio"
    r = api.post("/api/v1/channels", json={"type": "voice", "provider": "twilio",
                                           "credentials": {"account_sid": tw.account_sid}})
    assert r.status_code == 422 and _field(r) == "$.credentials.auth_token"
    r = api.post("/api/v1/channels", json={"type": "voice", "provider": "twilio",
                                           "credentials": {"account_sid": tw.account_sid, "auth_token": 5}})
    assert r.status_code == 422 and _field(r) == "$.credentials.auth_token"
    r = api.post("/api/v1/channels", json={"type": "voice", "provider": "meta", "credentials": {}})
    assert r.status_code == 422 and _field(r) == "$.provider"
    assert len(api.get("/api/v1/channels").json()["items"]) == before

    r = api.post("/api/v1/channels", json={"type": "voice", "provider": "twilio", "credentials": tw.creds})
    assert r.status_code == 201, r.text
    ch = r.json()
    assert ch["status"] == "setup"
    assert ch["webhook_url"] == f"https://converse.example.test/api/v1/webhooks/twilio/{ch['id']}"
    assert tw.auth_token not in r.text
    numbers = api.get(f"/api/v1/channels/{ch['id']}/numbers").json()["items"]
    assert "+15005550006" in [n["number"] for n in numbers]
    r = api.patch(f"/api/v1/channels/{ch['id']}", json={"phone_number": "+19999999999"})
    assert r.status_code == 422 and _field(r) == "$.phone_number"
    r = api.patch(f"/api/v1/channels/{ch['id']}", json={"phone_number": "+15005550006"})
    assert r.status_code == 200 and r.json()["phone_number_id"].startswith("PN")
    r = api.post(f"/api/v1/channels/{ch['id']}/activate")
    assert r.status_code == 422 and "agent_id" in r.json()["message"] and "flow_id" in r.json()["message"]
    api.patch(f"/api/v1/channels/{ch['id']}", json={"agent_id": _agent(api)})
    r = api.post(f"/api/v1/channels/{ch['id']}/activate")
    assert r.status_code == 200 and r.json()["status"] == "active", r.text
    assert tw.number("+15005550006")["voice_url"] == ch["webhook_url"]
    assert api.post(f"/api/v1/channels/{ch['id']}/deactivate").json()["status"] == "inactive"
    assert api.post(f"/api/v1/channels/{ch['id']}/verify").status_code == 200
    r = api.delete(f"/api/v1/channels/{ch['id']}")
    assert r.status_code == 200 and r.json()["deleted"] is True and r.json()["webhook_removed"] is True
    assert tw.number("+15005550006")["voice_url"] != ch["webhook_url"]
    assert api.get(f"/api/v1/channels/{ch['id']}").status_code == 404


def test_activation_failure_goes_to_error_then_verify(control_server, api):
    tw = control_server.twilio
    ch = api.post("/api/v1/channels", json={"type": "sms", "provider": "twilio", "credentials": tw.creds,
                                            "phone_number": "+15005550006",
                                            "agent_id": _agent(api)}).json()
    tw.fail("*", 500, times=None)
    try:
        r = api.post(f"/api/v1/channels/{ch['id']}/activate")
        assert r.status_code == 502 and r.json()["error"] == "provider"
        stored = api.get(f"/api/v1/channels/{ch['id']}").json()
        assert stored["status"] == "error" and stored["status_detail"].startswith("twilio")
    finally:
        tw.clear_faults()
    r = api.post(f"/api/v1/channels/{ch['id']}/verify")
    assert r.status_code == 200 and r.json()["status"] == "setup", r.text
    assert api.post(f"/api/v1/channels/{ch['id']}/activate").json()["status"] == "active"
    assert tw.number("+15005550006")["sms_url"] == ch["webhook_url"]


def test_provider_hang_is_504_and_nothing_stored(control_server, api):
    pl = control_server.plivo
    before = len(api.get("/api/v1/channels").json()["items"])
    pl.hang("*", seconds=30, times=1)
    r = api.post("/api/v1/channels", json={"type": "voice", "provider": "plivo", "credentials": pl.creds})
    assert r.status_code == 504, r.text
    assert r.json()["provider"] == "plivo"
    assert len(api.get("/api/v1/channels").json()["items"]) == before


def test_whatsapp_handshake(control_server, api):
    meta = control_server.meta
    r = api.post("/api/v1/channels", json={"type": "whatsapp", "provider": "meta",
                                           "credentials": {**meta.creds, "verify_token": "my-verify-token-1"},
                                           "agent_id": _agent(api)})
    assert r.status_code == 201, r.text
    ch = r.json()
    assert ch["verify_token"] == "my-verify-token-1"
    assert ch["webhook_url"] in ch["status_detail"]
    assert meta.access_token not in r.text and meta.app_secret not in r.text
    hook = control_server.base_url + f"/api/v1/webhooks/meta/{ch['id']}"
    bad = httpx.get(hook, params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "42"})
    assert bad.status_code == 403
    assert api.get(f"/api/v1/channels/{ch['id']}").json()["status"] == "setup"
    ok = httpx.get(hook, params={"hub.mode": "subscribe", "hub.verify_token": "my-verify-token-1",
                                 "hub.challenge": "1158201444"})
    assert ok.status_code == 200 and ok.text == "1158201444"
    assert ok.headers["content-type"].startswith("text/plain")
    assert api.get(f"/api/v1/channels/{ch['id']}").json()["status"] == "active"
    # Missing whatsapp-only credential fields are named.
    creds = dict(meta.creds)
    del creds["app_secret"]
    r = api.post("/api/v1/channels", json={"type": "whatsapp", "provider": "meta", "credentials": creds})
    assert r.status_code == 422 and _field(r) == "$.credentials.app_secret"


def test_webhook_dispatch_never_500(control_server, api):
    base = control_server.base_url + "/api/v1/webhooks"
    for path in ["/twilio/ch_missing", "/nosuch/ch_missing", "/meta/ch_missing"]:
        r = httpx.post(base + path, content=b"x=1")
        assert r.status_code == 404 and r.json()["error"] == "not_found"
    ch = api.post("/api/v1/channels", json={"type": "voice", "provider": "exotel",
                                            "credentials": control_server.exotel.creds}).json()
    r = httpx.post(f"{base}/twilio/{ch['id']}")            # provider does not match the channel
    assert r.status_code == 404
    r = httpx.post(f"{base}/exotel/{ch['id']}")    # the voice handler (if installed) decides
    assert r.status_code < 500


def test_secrets_never_in_responses_or_logs(control_server, api):
    tw, meta = control_server.twilio, control_server.meta
    seen = []
    r = api.post("/api/v1/channels", json={"type": "voice", "provider": "twilio", "credentials": tw.creds,
                                           "phone_number": "+15005550007"})
    seen.append(r.text)
    ch = r.json()["id"]
    seen += [api.get(f"/api/v1/channels/{ch}").text, api.get("/api/v1/channels").text,
             api.patch(f"/api/v1/channels/{ch}", json={"credentials": {"auth_token": tw.auth_token}}).text,
             api.post(f"/api/v1/channels/{ch}/verify").text, api.get(f"/api/v1/channels/{ch}/numbers").text]
    r = api.post("/api/v1/channels", json={"type": "whatsapp", "provider": "meta", "credentials": meta.creds})
    seen += [r.text, api.get(f"/api/v1/channels/{r.json()['id']}").text]
    masked = api.get(f"/api/v1/channels/{ch}").json()["credentials"]
    assert set(masked) == {"account_sid", "auth_token"} and all(v.startswith("••••") for v in masked.values())
    log = control_server.log_text()
    for secret in (tw.auth_token, meta.access_token, meta.app_secret, control_server.api_key):
        for text in seen:
            assert secret not in text
        assert secret not in log
