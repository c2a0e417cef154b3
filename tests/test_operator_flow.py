"""The operator flow of issue 3, steps 1-5, through the live control API (a real Hypercorn in a
subprocess, tests/fixtures_control.py) against the provider emulators: for Twilio voice and SMS,
Plivo, Exotel, Meta and web. Whatever the API claims was configured is read back from the
emulator's own state.
"""
from __future__ import annotations

import urllib.parse

import httpx
import pytest


@pytest.fixture
def api(control_server):
    with control_server.client() as client:
        yield client


def _agent(api) -> str:
    r = api.post("/api/v1/agents", json={"name": "echo", "kind": "echo"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _count(api) -> int:
    return len(api.get("/api/v1/channels").json()["items"])


def _create(api, ctype: str, provider: str, creds: dict, secret_field: str, words: str) -> dict:
    """Step 1: bad credentials are refused in the provider's words and store nothing; good
    ones give a channel in ``setup``."""
    before = _count(api)
    wrong = dict(creds, **{secret_field: "x" + creds[secret_field][1:][::-1]})
    r = api.post("/api/v1/channels", json={"type": ctype, "provider": provider,
                                           "credentials": wrong})
    assert r.status_code == 422, r.text
    assert r.json()["provider"] == provider and words in r.json()["message"]
    assert wrong[secret_field] not in r.text and _count(api) == before

    r = api.post("/api/v1/channels", json={"type": ctype, "provider": provider,
                                           "credentials": creds, "name": f"{provider} line"})
    assert r.status_code == 201, r.text
    ch = r.json()
    assert ch["status"] == "setup" and ch["type"] == ctype and ch["provider"] == provider
    assert creds[secret_field] not in r.text
    assert ch["webhook_url"].endswith(f"/api/v1/webhooks/{provider}/{ch['id']}")
    return ch


def _choose(api, ch: dict, number: str, provider_id: str) -> dict:
    """Steps 2-3: list the account's numbers, pick one, assign the agent."""
    r = api.get(f"/api/v1/channels/{ch['id']}/numbers")
    assert r.status_code == 200, r.text
    listed = {n["number"]: n for n in r.json()["items"]}
    assert listed[number]["provider_id"] == provider_id
    r = api.patch(f"/api/v1/channels/{ch['id']}",
                  json={"phone_number": number, "agent_id": _agent(api), "name": "front desk"})
    assert r.status_code == 200, r.text
    assert r.json()["phone_number"] == number and r.json()["name"] == "front desk"
    return r.json()


def _activate(api, ch: dict, status: str) -> dict:
    r = api.post(f"/api/v1/channels/{ch['id']}/activate")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == status, r.json()
    return r.json()


def _pause_and_resume(api, ch: dict, status: str) -> None:
    """Step 5: deactivate, then activate again."""
    r = api.post(f"/api/v1/channels/{ch['id']}/deactivate")
    assert r.status_code == 200 and r.json()["status"] == "inactive"
    _activate(api, ch, status)


def _delete(api, ch: dict) -> dict:
    r = api.delete(f"/api/v1/channels/{ch['id']}")
    assert r.status_code == 200 and r.json()["deleted"] is True, r.text
    assert api.get(f"/api/v1/channels/{ch['id']}").status_code == 404
    return r.json()


@pytest.mark.parametrize("ctype, url_field", [("voice", "voice_url"), ("sms", "sms_url")])
def test_twilio(control_server, api, ctype, url_field):
    tw = control_server.twilio
    ch = _create(api, ctype, "twilio", tw.creds, "auth_token", "Authenticate (code 20003")
    _choose(api, ch, "+15005550006", tw.number_sid)
    _activate(api, ch, "active")
    state = tw.number("+15005550006")
    assert state[url_field] == ch["webhook_url"]
    assert state[url_field.replace("url", "method")] == "POST"
    _pause_and_resume(api, ch, "active")
    assert tw.number("+15005550006")[url_field] == ch["webhook_url"]
    assert _delete(api, ch)["webhook_removed"] is True
    assert tw.number("+15005550006")[url_field] == ""


def test_plivo(control_server, api):
    pl = control_server.plivo
    ch = _create(api, "voice", "plivo", pl.creds, "auth_token", "Authentication failed")
    _choose(api, ch, "+14155550100", "14155550100")
    _activate(api, ch, "active")
    app = pl.application_of("14155550100")
    assert (app["answer_url"], app["answer_method"]) == (ch["webhook_url"], "POST")
    _pause_and_resume(api, ch, "active")
    assert pl.application_of("14155550100")["answer_url"] == ch["webhook_url"]
    assert len([a for a in pl.applications.values()
                if a["app_name"] == "converse-14155550100"]) == 1
    assert _delete(api, ch)["webhook_removed"] is True
    assert pl.application_of("14155550100") is None


def test_exotel(control_server, api):
    ex = control_server.exotel
    ch = _create(api, "voice", "exotel", ex.creds, "api_token", "Authentication failed")
    [exophone] = ex.exophones
    _choose(api, ch, "+918047112233", exophone)
    out = _activate(api, ch, "setup")      # no API for the applet: the operator is told what to do
    assert ch["webhook_url"] in out["status_detail"] and "Voicebot" in out["status_detail"]
    _pause_and_resume(api, ch, "setup")
    assert _delete(api, ch)["webhook_removed"] is False


def test_meta(control_server, api):
    meta = control_server.meta
    creds = dict(meta.creds, verify_token="operator-chosen-token")
    ch = _create(api, "whatsapp", "meta", creds, "access_token", "Invalid OAuth access token")
    _choose(api, ch, "+15550783881", meta.phone_number_id)
    out = _activate(api, ch, "setup")      # waits for Meta's verification handshake
    assert ch["webhook_url"] in out["status_detail"]
    # Meta calls the URL the operator pasted; the test reaches the same route on the live server.
    path = urllib.parse.urlsplit(ch["webhook_url"]).path
    params = {"hub.mode": "subscribe", "hub.verify_token": "operator-chosen-token",
              "hub.challenge": "1158201444"}
    r = httpx.get(control_server.base_url + path, params=params)
    assert r.status_code == 200 and r.text == "1158201444"
    assert api.get(f"/api/v1/channels/{ch['id']}").json()["status"] == "active"
    _pause_and_resume(api, ch, "active")
    _delete(api, ch)
    assert meta.calls("messages") == []     # the flow never sends anything on its own


def test_web(control_server, api):
    r = api.post("/api/v1/channels", json={"type": "web", "name": "site widget"})
    assert r.status_code == 201, r.text
    ch = r.json()
    assert ch["status"] == "setup" and ch["provider"] is None
    agent = _agent(api)
    r = api.patch(f"/api/v1/channels/{ch['id']}",
                  json={"agent_id": agent, "allowed_origins": ["https://shop.example.com"]})
    assert r.status_code == 200, r.text
    _activate(api, ch, "active")
    r = api.post(f"/api/v1/channels/{ch['id']}/session-url", json={})
    assert r.status_code == 200, r.text
    url = urllib.parse.urlsplit(r.json()["url"])
    assert url.scheme in ("ws", "wss") and url.path == f"/ws/agent/{agent}"
    assert "token" in urllib.parse.parse_qs(url.query) and r.json()["expires_at"]
    _pause_and_resume(api, ch, "active")
    assert _delete(api, ch)["webhook_removed"] is None
