"""Concurrent PATCH/activate/deactivate on one channel: every request gets a clean answer, and the
row's version advances exactly once per successful write (no lost update, no half-configured
channel). On PostgreSQL (the multi-node setup) the requests are spread over two control-plane
processes sharing the database; on SQLite (one node) they all go to one process."""
from __future__ import annotations

import random

import httpx
import trio

from fixtures_control import ControlServer

ROUNDS = 24


async def test_concurrent_updates(control_server, tmp_path):
    if control_server.settings.database_url.startswith("sqlite"):
        await _storm(control_server, control_server)
        return
    second = ControlServer(tmp_path, dict(control_server.env), control_server.emulators)
    second.api_key = control_server.api_key
    second.start()
    try:
        await _storm(control_server, second)
    finally:
        second.stop()


async def _storm(a: ControlServer, b: ControlServer) -> None:
    tw = a.twilio
    async with a.async_client() as api_a, b.async_client() as api_b:
        agent = (await api_a.post("/api/v1/agents", json={"name": "a", "kind": "echo"})).json()["id"]
        flow = (await api_a.post("/api/v1/flows", json={"name": "f", "definition": {"start": "s", "nodes": {"s": {"type": "entry", "next": "e"}, "e": {"type": "end"}}}})).json()["id"]
        r = await api_a.post("/api/v1/channels", json={"type": "voice", "provider": "twilio",
                                                       "credentials": tw.creds, "agent_id": agent,
                                                       "phone_number": "+15005550006"})
        ch = r.json()
        start_version = ch["version"]
        requests = []
        rng = random.Random(7)
        for i in range(ROUNDS):
            kind = rng.choice(["to_agent", "to_flow", "activate", "deactivate", "rename"])
            requests.append((rng.choice([api_a, api_b]), kind, i))
        results: list[tuple[str, int]] = []

        async def one(client: httpx.AsyncClient, kind: str, i: int):
            url = f"/api/v1/channels/{ch['id']}"
            if kind == "to_agent":
                r = await client.patch(url, json={"agent_id": agent, "flow_id": None})
            elif kind == "to_flow":
                r = await client.patch(url, json={"agent_id": None, "flow_id": flow})
            elif kind == "rename":
                r = await client.patch(url, json={"name": f"n{i}"})
            else:
                r = await client.post(f"{url}/{kind}")
            results.append((kind, r.status_code, r.text))

        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                for client, kind, i in requests:
                    nursery.start_soon(one, client, kind, i)

        assert all(status in (200, 409, 422) for _, status, _ in results), results
        ok = sum(1 for _, status, _ in results if status == 200)
        assert ok >= 1
        final = (await api_a.get(f"/api/v1/channels/{ch['id']}")).json()
        assert final["version"] == start_version + ok, (final, results)
        assert bool(final["agent_id"]) != bool(final["flow_id"])       # exactly one target
        if final["status"] == "active":
            assert tw.number("+15005550006")["voice_url"] == final["webhook_url"]
        # 422s only ever come from the "exactly one target while active" rule.
        for kind, status, text in results:
            if status == 422:
                assert "agent_id" in text and "flow_id" in text
