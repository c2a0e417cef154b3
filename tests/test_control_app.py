"""In-process checks of the app wiring: the OpenAPI document lists exactly the routes Quart
serves, and the webhook handler registry dispatches (the voice/messaging handlers plug in here)."""
from __future__ import annotations

import re

import pytest
from quart import Response

from control.api import create_app, errors, register_webhook_handler, webhooks
from control.config import Settings
from control.secrets import generate_key, parse_key
from control.store import channel_aad, open_store, repo


@pytest.fixture
def app_and_store(tmp_path):
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'c.db'}", secret_key=parse_key(generate_key()),
                        public_url="https://pub.example")
    store = open_store(settings)
    yield create_app(settings, store), store
    store.close()


def test_openapi_matches_routes(app_and_store):
    app, _ = app_and_store
    from control.api.openapi import document
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1") or rule.rule in ("/healthz", "/metrics"):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            served |= {(path, m.lower()) for m in rule.methods if m not in ("HEAD", "OPTIONS")}
    documented = {(p, m) for p, ops in document()["paths"].items() for m in ops}
    assert served == documented


def _insert(store, status="active", provider="twilio", ctype="voice"):
    now = repo.now_iso()
    ct = store.box.encrypt_json({"auth_token": "tok-123"}, channel_aad("ch_1"))
    store.run_sync(repo.insert_channel, repo.ChannelRow(
        id="ch_1", name="c", type=ctype, provider=provider, credentials=ct, status=status,
        created_at=now, updated_at=now))


@pytest.fixture
def handler_slot():
    saved = dict(webhooks._HANDLERS)
    yield
    webhooks._HANDLERS.clear()
    webhooks._HANDLERS.update(saved)


@pytest.mark.parametrize("status", ["active", "inactive"])
async def test_registered_handler_gets_context(app_and_store, handler_slot, status):
    app, store = app_and_store
    _insert(store, status=status)
    seen = {}

    async def handler(ctx):
        seen.update(in_service=ctx.in_service, token=ctx.credentials()["auth_token"],
                    url=ctx.webhook_url, form=dict(await ctx.request.form))
        return Response("<Response/>", content_type="text/xml")

    register_webhook_handler("twilio", "voice", handler)
    client = app.test_client()
    r = await client.post("/api/v1/webhooks/twilio/ch_1", form={"CallSid": "CA1"})
    assert r.status_code == 200 and (await r.get_data()) == b"<Response/>"
    assert seen == {"in_service": status == "active", "token": "tok-123",
                    "url": "https://pub.example/api/v1/webhooks/twilio/ch_1", "form": {"CallSid": "CA1"}}
    # The URL's provider must match the channel's.
    r = await client.post("/api/v1/webhooks/plivo/ch_1")
    assert r.status_code == 404


async def test_unhandled_type_is_polite_404(app_and_store, handler_slot):
    app, store = app_and_store
    _insert(store, ctype="sms")
    webhooks._HANDLERS.pop(("twilio", "sms"), None)
    r = await app.test_client().post("/api/v1/webhooks/twilio/ch_1")
    assert r.status_code == 404
    assert (await r.get_json())["error"] == "not_found"


async def test_handler_crash_is_json_500_without_trace(app_and_store, handler_slot, caplog):
    app, store = app_and_store
    _insert(store)

    async def broken(ctx):
        secret = ctx.credentials()["auth_token"]       # not spelled here: the trace shows source lines
        raise RuntimeError(f"secret detail {secret}")

    register_webhook_handler("twilio", "voice", broken)
    r = await app.test_client().post("/api/v1/webhooks/twilio/ch_1")
    body = await r.get_data()
    assert r.status_code == 500 and b"tok-123" not in body and b"Traceback" not in body
    assert "RuntimeError" in caplog.text and "tok-123" not in caplog.text


async def test_oversized_body_is_413_json(app_and_store):
    app, _ = app_and_store
    r = await app.test_client().post("/api/v1/agents", data=b"x" * (errors.MAX_BODY_BYTES + 1),
                                     headers={"Authorization": "Bearer whatever"})
    assert r.status_code == 413
    assert (await r.get_json())["error"] == "too_large"


async def test_database_trouble_is_503_json(app_and_store, monkeypatch):
    app, store = app_and_store
    from control.store import StoreError

    def down(*a, **kw):
        raise StoreError("PostgreSQL error: connection refused")

    monkeypatch.setattr(store, "run_sync", down)
    r = await app.test_client().get("/api/v1/channels", headers={"Authorization": "Bearer k"})
    assert r.status_code == 503 and (await r.get_json())["error"] == "unavailable"
    r = await app.test_client().get("/healthz")
    assert r.status_code == 503
