"""Gateway server on 127.0.0.1 with a real WebSocket client: routing, authentication before the
upgrade, admission limits, plain-HTTP endpoints, bad input, graceful shutdown."""
from __future__ import annotations

import pytest
import trio

from fixtures_gateway import (ORIGIN, SECRET, make_directory, open_session, receive_json,
                              start_gateway, url, web_token)
from gateway import tokens, transport
from gateway.directory import AgentInfo, ChannelInfo
from gateway.limits import Limits
from gateway.protocols import canonical
from gateway.protocols.canonical import Text


async def test_text_round_trip_by_origin(gateway):
    ws = await open_session(gateway)
    await ws.send_text(canonical.encode(Text(text="hello there")))
    event = await receive_json(ws, "transcript")
    assert event.text == "You said: hello there" and event.role == "assistant"
    await ws.aclose()


async def test_text_round_trip_by_token(gateway):
    token = web_token("web1", "agent:echo")
    ws = await open_session(gateway, f"/ws/agent/echo?token={token}", origin=None)
    await ws.send_text(b'{"type":"text","text":"hi"}')
    assert (await receive_json(ws, "transcript")).text == "You said: hi"
    await ws.aclose()


async def _refused(server, path, origin=ORIGIN) -> transport.HandshakeError:
    with pytest.raises(transport.HandshakeError) as info:
        await open_session(server, path, origin=origin)
    return info.value


@pytest.mark.parametrize("path, origin, status, why", [
    ("/ws/agent/echo", "https://evil.example", 403, b"origin not allowed"),
    ("/ws/agent/echo", None, 403, b"token or an allowed Origin"),
    ("/ws/agent/off", ORIGIN, 403, b"channel is inactive"),
    ("/ws/agent/echo?token=garbage", None, 403, b"malformed token"),
    ("/ws/agent/nobody", ORIGIN, 403, b"origin not allowed"),
    ("/ws/nowhere/echo", ORIGIN, 404, b"no such endpoint"),
])
async def test_rejected_before_upgrade(gateway, path, origin, status, why):
    err = await _refused(gateway, path, origin)
    assert err.status == status and why in err.body


async def test_token_rejections(gateway):
    expired = tokens.issue(SECRET, "web", 60, now=0, ch="web1", target="agent:echo")
    assert b"expired" in (await _refused(gateway, f"/ws/agent/echo?token={expired}", None)).body
    other = web_token("web1", "agent:stream")
    assert (await _refused(gateway, f"/ws/agent/echo?token={other}", None)).status == 403
    inactive = web_token("web-off", "agent:off")
    err = await _refused(gateway, f"/ws/agent/off?token={inactive}", None)
    assert err.status == 403 and b"inactive" in err.body
    forged = tokens.issue(b"another secret", "web", 60, ch="web1", target="agent:echo")
    assert b"signature" in (await _refused(gateway, f"/ws/agent/echo?token={forged}", None)).body
    stream = tokens.issue(SECRET, "stream", 60, ch="web1", target="agent:echo")
    assert (await _refused(gateway, f"/ws/agent/echo?token={stream}", None)).status == 403


async def test_bad_input_gets_error_events_and_session_continues(gateway):
    ws = await open_session(gateway)
    await ws.send(b"\x01\x02\x03")
    assert (await receive_json(ws, "error")).code == "odd_audio_length"
    await ws.send("{not json")
    assert (await receive_json(ws, "error")).code == "malformed_json"
    await ws.send('{"type":"teleport"}')
    err = await receive_json(ws, "error")
    assert err.code == "unknown_type" and "teleport" in err.message
    await ws.send('{"type":"start","session_id":"x","channel_id":"y","channel_type":"web"}')
    assert (await receive_json(ws, "error")).code == "not_allowed"
    await ws.send('{"type":"mark","name":"forged"}')
    assert (await receive_json(ws, "error")).code == "not_allowed"
    await ws.send_text(b'{"type":"text","text":"still here"}')
    assert (await receive_json(ws, "transcript")).text == "You said: still here"
    await ws.aclose()


async def test_metrics_and_health_over_plain_http(gateway):
    ws = await open_session(gateway)
    await ws.send(b"\x00\x00" * 320)
    await ws.send_text(b'{"type":"text","text":"x"}')
    await receive_json(ws, "transcript")
    body = await _http_get(gateway.port, "/metrics")
    assert b"200 OK" in body.split(b"\r\n", 1)[0]
    assert b"converse_sessions_active 1" in body
    assert b"converse_frames_in_total 1" in body
    assert b"converse_added_latency_seconds_count" in body
    assert b"200 OK" in (await _http_get(gateway.port, "/healthz"))
    await ws.aclose()


async def _http_get(port: int, path: str) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(65536):
                data += chunk
        return data


async def test_flow_route_needs_a_flow_runner(nursery):
    server = await start_gateway(nursery)
    err = await _refused(server, "/ws/flow/f1")
    assert err.status == 503 and b"flow" in err.body
    assert (await _refused(server, "/ws/flow/nope")).status == 403      # no channel for it
    server.shutdown()
    # with a runner (the flow engine's hook), the flow's agent answers
    echo = AgentInfo(id="echo", name="Echo", kind="echo")
    server = await start_gateway(nursery, flow_agent=lambda flow: echo)
    token = web_token("web-flow", "flow:f1")
    ws = await open_session(server, f"/ws/flow/f1?token={token}", origin=None)
    await ws.send_text(b'{"type":"text","text":"via a flow"}')
    assert (await receive_json(ws, "transcript")).text == "You said: via a flow"
    await ws.aclose()
    server.shutdown()


async def test_tokens_and_payloads_never_logged(gateway, caplog):
    import logging
    caplog.set_level(logging.DEBUG)
    token = web_token("web1", "agent:echo")
    ws = await open_session(gateway, f"/ws/agent/echo?token={token}", origin=None)
    await ws.send_text(b'{"type":"text","text":"secret-payload-123"}')
    await receive_json(ws, "transcript")
    await ws.send(b"{bad json with secret-payload-456")
    await receive_json(ws, "error")
    await ws.aclose()
    forged = token[:-4] + "AAAA"
    with pytest.raises(transport.HandshakeError):
        await open_session(gateway, f"/ws/agent/echo?token={forged}", origin=None)
    text = caplog.text
    assert token not in text and forged not in text and token.split(".")[1] not in text
    assert "secret-payload" not in text


async def test_dtmf_reaches_the_echo_agent(gateway):
    ws = await open_session(gateway)
    await ws.send_text(b'{"type":"dtmf","digit":"5"}')
    assert (await receive_json(ws, "transcript")).text == "You pressed 5."
    await ws.send_text(b'{"type":"dtmf","digit":"55"}')
    assert (await receive_json(ws, "error")).code == "invalid_field"
    await ws.aclose()
