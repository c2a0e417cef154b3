"""The gateway's plain-HTTP answers (/metrics, /healthz) read by a strict HTTP client (httpx), as a
Prometheus scraper or a load balancer's health check would: one Content-Length, the right type."""
from __future__ import annotations

import httpx

from fixtures_gateway import open_session, receive_json


async def test_metrics_and_healthz_with_httpx(gateway):
    ws = await open_session(gateway)
    await ws.send_text(b'{"type":"text","text":"x"}')
    await receive_json(ws, "transcript")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.port}", timeout=10) as http:
        metrics = await http.get("/metrics")
        health = await http.get("/healthz")
    await ws.aclose()
    assert metrics.status_code == 200
    assert metrics.headers.get_list("content-length") == [str(len(metrics.content))]
    assert metrics.headers.get_list("content-type") == ["text/plain; version=0.0.4"]
    assert "converse_sessions_active 1" in metrics.text
    assert health.status_code == 200 and health.text == "ok\n"
    assert health.headers.get_list("content-length") == ["3"]
    assert health.headers.get_list("content-type") == ["text/plain"]
