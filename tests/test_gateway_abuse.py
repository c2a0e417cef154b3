"""Misbehaving peers never affect healthy sessions (RELIABILITY 4, 10-12), on 127.0.0.1:
garbage frames, a 10 MB message and a client that never reads run beside 20 healthy sessions
which must get every echoed frame, none late, none dropped. Virtual clock, bounded counts."""
from __future__ import annotations

import gc
import socket

import numpy as np
import trio

from fixtures_gateway import make_directory, open_session, start_gateway
from gateway import agents, transport
from gateway.directory import AgentInfo, ChannelInfo
from gateway.limits import Limits

FRAMES = 100                     # 2 s of 20 ms frames per healthy session


class ToneAgent:
    """Streams a long tone at the caller as fast as the session takes it."""

    def __init__(self, config, limits):
        self.seconds = config.get("seconds", 60)

    async def run(self, start, inbox, outbox):
        chunk = (np.sin(np.arange(9600 // 2) / 3.0) * 8000).astype("<i2").tobytes()
        for _ in range(int(self.seconds * 5)):
            await outbox.send(chunk)
        async for _ in inbox:
            pass


def directory():
    return make_directory(
        extra_agents=[AgentInfo(id="tone", name="Tone", kind="tone")],
        extra_channels=[ChannelInfo(id="web-tone", type="web", status="active", agent_id="tone",
                                    allowed_origins=("http://localhost:8000",))])


async def shrink_receive_buffer(ws) -> None:
    ws._stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)


async def healthy(server, results: list) -> None:
    ws = await open_session(server, "/ws/agent/stream")
    received = 0

    async def reader():
        nonlocal received
        while received < FRAMES * 960:
            message = await ws.receive()
            if type(message) is bytes:
                received += len(message)

    async with trio.open_nursery() as n:
        n.start_soon(reader)
        for _ in range(FRAMES):
            await ws.send(b"\x10\x00" * 320)
            await trio.sleep(0.02)
    results.append(received)
    await ws.aclose()


async def garbage_client(server) -> None:
    ws = await open_session(server, "/ws/agent/stream")
    for junk in (b"\x01", b'{"type":', b"\xff" * 3, b"[]"):
        await ws.send(junk)
    await ws._stream.send_all(b"\x8f\x80garbage-frame-bytes")      # reserved opcode
    try:
        while True:
            await ws.receive()
    except transport.ConnectionClosed as closed:
        assert closed.code == 1002


async def huge_message_client(server) -> None:
    ws = await open_session(server, "/ws/agent/stream")
    try:
        await ws.send(b"\x00" * (10 * 1024 * 1024))
        while True:
            await ws.receive()
    except transport.ConnectionClosed as closed:
        assert closed.code in (1009, 1006)


async def never_reading_client(server) -> None:
    ws = await open_session(server, "/ws/agent/tone")
    await shrink_receive_buffer(ws)
    await trio.sleep(30)                  # never reads; the server must give up on it
    await trio.aclose_forcefully(ws._stream)


async def test_write_blocked_closes_session_1011(nursery, autojump_clock, monkeypatch):
    monkeypatch.setitem(agents.CONNECTORS, "tone", ToneAgent)
    # pings far apart: the 1011 can only come from the blocked write
    server = await start_gateway(nursery, directory(), Limits(socket_sndbuf=4096,
                                                              ping_interval_s=600))
    ws = await open_session(server, "/ws/agent/tone")
    await shrink_receive_buffer(ws)
    start = trio.current_time()
    with trio.fail_after(60):
        while server.metrics.close_codes.get(1011, 0) == 0:
            await trio.sleep(0.5)
    assert not server.sessions
    assert trio.current_time() - start < 10     # buffers fill within seconds, then 2 s blocked
    await trio.aclose_forcefully(ws._stream)
    server.shutdown()


async def test_misbehaving_clients_do_not_affect_healthy_sessions(nursery, autojump_clock,
                                                                  monkeypatch):
    monkeypatch.setitem(agents.CONNECTORS, "tone", ToneAgent)
    server = await start_gateway(nursery, directory(), Limits(socket_sndbuf=4096,
                                                              handshake_burst=100,
                                                              ping_interval_s=600))
    results: list[int] = []
    stats = []
    original = server.run_session

    async def spy(session):
        stats.append(session.stats)
        return await original(session)

    server.run_session = spy
    async with trio.open_nursery() as n:
        n.start_soon(garbage_client, server)
        n.start_soon(huge_message_client, server)
        n.start_soon(never_reading_client, server)
        for _ in range(20):
            n.start_soon(healthy, server, results)
    assert results == [FRAMES * 960] * 20
    web = [s for s in stats if s.frames_in == FRAMES]
    assert len(web) == 20
    for s in web:
        assert s.dropped_in == 0 and s.dropped_out == 0 and s.late_frames == 0
    assert server.metrics.close_codes.get(1011, 0) == 1       # the non-reader, and only it
    server.shutdown()


def _rss() -> int:
    import os
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _open_fds() -> int:
    import os
    return len(os.listdir("/proc/self/fd"))


def _live_tasks() -> int:
    """Every task in the run, walking the tree from the root."""
    todo, count = [trio.lowlevel.current_root_task()], 0
    while todo:
        task = todo.pop()
        count += 1
        for nursery in task.child_nurseries:
            todo.extend(nursery.child_tasks)
    return count


async def test_churn_leaves_fds_and_tasks_at_baseline(nursery, autojump_clock):
    """RELIABILITY 9, bounded for CI: connect -> 10 frames -> close, 300 times."""
    server = await start_gateway(nursery, limits=Limits(handshake_burst=1000))

    async def cycle():
        ws = await open_session(server, "/ws/agent/echo")
        for _ in range(10):
            await ws.send(bytes(640))
        await ws.aclose()

    for _ in range(30):                  # warm-up: caches, allocator arenas
        await cycle()
    await trio.sleep(1)
    gc.collect()
    fds, tasks, rss = _open_fds(), _live_tasks(), _rss()
    for _ in range(300):
        await cycle()
    with trio.fail_after(30):
        while server.sessions:
            await trio.sleep(0.1)
    await trio.sleep(1)
    gc.collect()
    assert _open_fds() <= fds
    assert _live_tasks() <= tasks
    assert _rss() - rss < 4 * 1024 * 1024          # memory within a few MB
    assert server.metrics.sessions_total == 330 and not server.metrics.live
    server.shutdown()
