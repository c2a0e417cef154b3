"""RELIABILITY 16 (auth half): every operation in the OpenAPI document that declares the bearer
scheme answers 401 without a key (or with a malformed one) and 403 with an unknown or revoked key,
and does nothing. The document is iterated, so an operation added later is covered by itself; the
operations that declare no security must be exactly the known public ones (webhooks carry provider
signatures, health/metrics/openapi are read-only), so a route cannot silently drop its auth."""
from __future__ import annotations

import pytest

from control.api import create_app
from control.api.openapi import document
from control.config import Settings
from control.secrets import generate_key, parse_key
from control.store import create_api_key, open_store, repo

PUBLIC = {("get", "/healthz"), ("get", "/metrics"), ("get", "/api/v1/openapi.json"),
          ("get", "/api/v1/webhooks/{provider}/{channel_id}"),
          ("post", "/api/v1/webhooks/{provider}/{channel_id}"),
          ("post", "/api/v1/webhooks/plivo/{channel_id}/transfer")}


def _operations() -> list[tuple[str, str, bool]]:
    return [(method, path, bool(op.get("security")))
            for path, ops in document()["paths"].items() for method, op in ops.items()]


@pytest.fixture
def app_store_keys(tmp_path):
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'c.db'}",
                        secret_key=parse_key(generate_key()), public_url="https://pub.example")
    store = open_store(settings)
    _, good = store.run_sync(create_api_key, "good")
    revoked_row, revoked = store.run_sync(create_api_key, "revoked")
    store.run_sync(repo.revoke_api_key, revoked_row.id)
    app = create_app(settings, store)
    yield app, store, good, revoked
    store.close()


def test_public_operations_are_exactly_the_known_ones(app_store_keys):
    public = {(m, p) for m, p, secured in _operations() if not secured}
    assert public == PUBLIC


def _fill(path: str, ids: dict[str, str]) -> str:
    for name, value in ids.items():
        path = path.replace("{" + name + "}", value)
    return path


async def _seed(client, key: str) -> dict[str, str]:
    """Real ids, so a handler that ran before auth would reach real rows (and show it)."""
    auth = {"Authorization": f"Bearer {key}"}
    agent = await (await client.post("/api/v1/agents", json={"name": "a", "kind": "echo"},
                                     headers=auth)).get_json()
    channel = await (await client.post("/api/v1/channels", json={
        "type": "web", "agent_id": agent["id"], "allowed_origins": ["https://a.example"]},
        headers=auth)).get_json()
    keys = await (await client.get("/api/v1/keys", headers=auth)).get_json()
    return {"agent_id": agent["id"], "channel_id": channel["id"], "flow_id": "flow_missing",
            "key_id": keys[0]["id"] if isinstance(keys, list) else keys["items"][0]["id"],
            "message_id": "msg_missing", "provider": "twilio"}


async def test_every_secured_operation_refuses_missing_bad_and_revoked_keys(app_store_keys):
    app, store, good, revoked = app_store_keys
    client = app.test_client()
    ids = await _seed(client, good)
    before = await (await client.get("/api/v1/agents", headers={
        "Authorization": f"Bearer {good}"})).get_data()
    cases = [(None, 401), ("Basic dXNlcjpwYXNz", 401), ("Bearer", 401), ("Bearer a b", 401),
             ("Bearer cvg_" + "x" * 300, 401), (f"Bearer {good}x", 403), (f"Bearer {revoked}", 403)]
    checked = 0
    for method, path, secured in _operations():
        if not secured:
            continue
        url = _fill(path, ids)
        for header, want in cases:
            headers = {"Authorization": header} if header else {}
            body = {"json": {}} if method in ("post", "patch") else {}
            r = await client.open(url, method=method.upper(), headers=headers, **body)
            assert r.status_code == want, (method, path, header, r.status_code)
            data = await r.get_json()
            assert data["error"] == ("unauthorized" if want == 401 else "forbidden"), (method, path)
            if want == 401:
                assert r.headers.get("WWW-Authenticate", "").startswith("Bearer")
            checked += 1
    assert checked >= 25 * len(cases)            # the document really was iterated
    after = await (await client.get("/api/v1/agents", headers={
        "Authorization": f"Bearer {good}"})).get_data()
    assert after == before                       # no refused call changed anything
    assert (await client.get(f"/api/v1/channels/{ids['channel_id']}",
                             headers={"Authorization": f"Bearer {good}"})).status_code == 200
