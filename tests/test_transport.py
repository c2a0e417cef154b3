"""The WebSocket transport and the limits it enforces, against the real server on 127.0.0.1.
Deadlines run on Trio's virtual clock (``autojump_clock``): no real sleeps, no timing thresholds."""
from __future__ import annotations

import pytest
import trio
from websockets.frames import Frame, Opcode

from fixtures_gateway import open_session, receive_json, start_gateway, url
from gateway import transport
from gateway.limits import HandshakeRateLimiter, Limits


def raw_frame(opcode: Opcode, data: bytes, fin: bool = True) -> bytes:
    return Frame(opcode, data, fin).serialize(mask=True, extensions=[])


async def closed_with(ws) -> transport.ConnectionClosed:
    with trio.fail_after(30):
        while True:
            try:
                await ws.receive()
            except transport.ConnectionClosed as closed:
                return closed


async def test_message_over_limit_closes_1009(gateway):
    ws = await open_session(gateway)
    await ws.send(b"\x00" * (64 * 1024 + 2))
    closed = await closed_with(ws)
    assert closed.code == 1009 and "exceeds limit" in closed.reason


async def test_fragmented_message_over_limit_closes_1009(gateway):
    ws = await open_session(gateway)
    for _ in range(3):
        await ws._stream.send_all(raw_frame(Opcode.BINARY if _ == 0 else Opcode.CONT,
                                            b"\x00" * 30_000, fin=False))
    assert (await closed_with(ws)).code == 1009


async def test_invalid_frame_closes_1002(gateway):
    ws = await open_session(gateway)
    await ws._stream.send_all(raw_frame(Opcode.CONT, b"orphan continuation"))
    assert (await closed_with(ws)).code == 1002


async def test_unmasked_client_frame_closes_1002(gateway):
    ws = await open_session(gateway)
    await ws._stream.send_all(Frame(Opcode.BINARY, b"\x00\x00").serialize(mask=False,
                                                                          extensions=[]))
    assert (await closed_with(ws)).code == 1002


async def test_invalid_utf8_closes_1007(gateway):
    ws = await open_session(gateway)
    await ws._stream.send_all(raw_frame(Opcode.TEXT, b'{"type":"text","text":"\xff\xfe"}'))
    closed = await closed_with(ws)
    assert closed.code == 1007 and "UTF-8" in closed.reason


async def test_fragmented_text_is_reassembled(gateway):
    ws = await open_session(gateway)
    body = b'{"type":"text","text":"in pieces"}'
    await ws._stream.send_all(raw_frame(Opcode.TEXT, body[:10], fin=False)
                              + raw_frame(Opcode.PING, b"p")
                              + raw_frame(Opcode.CONT, body[10:]))
    assert (await receive_json(ws, "transcript")).text == "You said: in pieces"
    await ws.aclose()


async def test_handshake_deadline_drops_silent_tcp(nursery, autojump_clock):
    server = await start_gateway(nursery, limits=Limits(handshake_timeout_s=5))
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    start = trio.current_time()
    await stream.send_all(b"GET /ws/agent/echo HTTP/1.1\r\nHost: x\r\n")   # never finished
    with trio.fail_after(60):
        assert await stream.receive_some(1024) == b""
    assert 5 <= trio.current_time() - start < 6
    server.shutdown()


async def test_half_open_peer_detected_within_two_ping_intervals(nursery, autojump_clock):
    server = await start_gateway(nursery, limits=Limits(ping_interval_s=5, idle_timeout_s=600))
    ws = await open_session(server)          # we never read: pings go unanswered
    start = trio.current_time()
    with trio.fail_after(60):
        while server.metrics.close_codes.get(1011, 0) == 0:
            await trio.sleep(0.5)
    assert trio.current_time() - start <= 2 * 5 + 0.5
    await trio.aclose_forcefully(ws._stream)
    server.shutdown()


async def test_answering_peer_is_kept_alive(nursery, autojump_clock):
    server = await start_gateway(nursery, limits=Limits(ping_interval_s=5, idle_timeout_s=600))
    ws = await open_session(server)
    with trio.move_on_after(60):
        await ws.receive()                   # reading answers the pings
    assert len(server.sessions) == 1
    await ws.aclose()
    server.shutdown()


async def test_idle_timeout_ends_session(nursery, autojump_clock):
    server = await start_gateway(nursery, limits=Limits(idle_timeout_s=10))
    ws = await open_session(server)
    end = await receive_json(ws, "end")
    assert end.reason == "idle timeout"
    assert (await closed_with(ws)).code == 1000


async def test_per_ip_handshake_rate_gets_429(nursery, autojump_clock):
    server = await start_gateway(nursery, limits=Limits(handshake_rate_per_s=0.5,
                                                        handshake_burst=3))
    sessions = [await open_session(server) for _ in range(3)]
    with pytest.raises(transport.HandshakeError) as info:
        await open_session(server)
    assert info.value.status == 429
    await trio.sleep(2.5)                                   # the bucket refills
    sessions.append(await open_session(server))
    for ws in sessions:
        await ws.aclose()
    server.shutdown()


def test_rate_limiter_bounded_memory():
    limiter = HandshakeRateLimiter(1.0, 2, max_ips=100)
    for i in range(1000):
        assert limiter.allow(f"10.0.{i // 256}.{i % 256}", now=i * 0.001)
    assert len(limiter._buckets) <= 100
    assert limiter.allow("1.1.1.1", 0) and limiter.allow("1.1.1.1", 0)
    assert not limiter.allow("1.1.1.1", 0)


async def test_session_limit_gets_503_and_existing_sessions_lose_nothing(nursery):
    server = await start_gateway(nursery, limits=Limits(max_sessions=2))
    a, b = await open_session(server), await open_session(server)
    with pytest.raises(transport.HandshakeError) as info:
        await open_session(server)
    assert info.value.status == 503 and b"capacity" in info.value.body
    for i, ws in enumerate((a, b)):
        await ws.send_text(b'{"type":"text","text":"%d"}' % i)
        assert (await receive_json(ws, "transcript")).text == f"You said: {i}"
    await a.aclose()
    with trio.fail_after(10):
        while len(server.sessions) > 1:
            await trio.sleep(0.01)
    c = await open_session(server)                         # room again
    await c.aclose()
    await b.aclose()
    server.shutdown()


async def test_client_connect_errors_are_handshake_errors():
    listeners = await transport.open_listeners("127.0.0.1", 0)
    port = listeners[0].socket.getsockname()[1]
    await listeners[0].aclose()                            # nothing listens there now
    with pytest.raises(transport.HandshakeError):
        await transport.connect(f"ws://127.0.0.1:{port}/", timeout=5)
    with pytest.raises(transport.HandshakeError):
        await transport.connect("http://not-a-websocket-url/")


async def test_client_connect_timeout(nursery, autojump_clock):
    listeners = await transport.open_listeners("127.0.0.1", 0)   # accepts, never answers
    port = listeners[0].socket.getsockname()[1]
    with pytest.raises(transport.HandshakeError, match="timed out"):
        await transport.connect(f"ws://127.0.0.1:{port}/", timeout=3)
    await listeners[0].aclose()


async def test_plain_http_get_on_ws_route_is_refused_cleanly(gateway):
    stream = await trio.open_tcp_stream("127.0.0.1", gateway.port)
    await stream.send_all(b"GET /ws/agent/echo HTTP/1.1\r\nHost: x\r\nOrigin: "
                          b"http://localhost:8000\r\n\r\n")
    with trio.fail_after(10):
        data = await stream.receive_some(4096)
    assert data.startswith(b"HTTP/1.1 426")
    await stream.aclose()


async def test_garbage_instead_of_http_is_dropped(gateway):
    stream = await trio.open_tcp_stream("127.0.0.1", gateway.port)
    await stream.send_all(b"\x16\x03\x01\x02\x00garbage\r\n\r\n")
    with trio.fail_after(10):
        while await stream.receive_some(4096):
            pass
    await stream.aclose()
    ws = await open_session(gateway)                       # the server is fine
    await ws.aclose()


async def test_reuse_port_lets_two_servers_share_a_port():
    first = await transport.open_listeners("127.0.0.1", 0, reuse_port=True)
    port = first[0].socket.getsockname()[1]
    second = await transport.open_listeners("127.0.0.1", port, reuse_port=True)
    assert second[0].socket.getsockname()[1] == port
    for listener in first + second:
        await listener.aclose()


async def test_frame_pipelined_with_the_upgrade_request_is_kept(gateway):
    stream = await trio.open_tcp_stream("127.0.0.1", gateway.port)
    request = (b"GET /ws/agent/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
               b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               b"Sec-WebSocket-Version: 13\r\nOrigin: http://localhost:8000\r\n\r\n")
    await stream.send_all(request + raw_frame(Opcode.TEXT, b'{"type":"text","text":"early"}'))
    data = b""
    with trio.fail_after(10):
        while b"You said: early" not in data:
            data += await stream.receive_some(65536)
    assert data.startswith(b"HTTP/1.1 101")
    await stream.aclose()


from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None, derandomize=True)
@given(junk=st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=4))
async def test_random_bytes_after_upgrade_never_hurt_the_server(junk):
    """Whatever arrives after the upgrade: a clean close with a code (or a surviving session),
    and the server keeps serving others."""
    async with trio.open_nursery() as nursery:
        server = await start_gateway(nursery)
        ws = await open_session(server)
        for chunk in junk:
            await ws._stream.send_all(chunk)
        with trio.move_on_after(0.2):       # a partial frame just waits for more: that is fine
            try:
                while True:
                    await ws.receive()
            except transport.ConnectionClosed as closed:
                assert closed.code in (1000, 1002, 1006, 1007, 1009, 1011)
        await trio.aclose_forcefully(ws._stream)
        other = await open_session(server)
        await other.send_text(b'{"type":"text","text":"ok"}')
        assert (await receive_json(other, "transcript")).text == "You said: ok"
        await other.aclose()
        server.shutdown()


async def test_rate_limit_per_client_behind_a_trusted_proxy(nursery, autojump_clock):
    server = await start_gateway(nursery, limits=Limits(handshake_rate_per_s=0.01,
                                                        handshake_burst=2,
                                                        trusted_proxies=("127.0.0.1",)))

    async def via_proxy(client: str):
        return await transport.connect(url(server, "/ws/agent/echo"),
                                       {"Origin": "http://localhost:8000",
                                        "X-Forwarded-For": f"6.6.6.6, {client}"})

    sessions = [await via_proxy("10.0.0.1"), await via_proxy("10.0.0.1")]
    with pytest.raises(transport.HandshakeError) as info:
        await via_proxy("10.0.0.1")                 # this client is over its budget...
    assert info.value.status == 429
    sessions.append(await via_proxy("10.0.0.2"))    # ...another one behind the proxy is not
    for ws in sessions:
        await ws.aclose()
    server.shutdown()
