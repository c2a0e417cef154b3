"""RELIABILITY 12: a caller whose socket stops taking our writes is closed with 1011 once a write
has been blocked for 2 s, and 50 healthy sessions beside it see no extra latency.

No wall clock: everything runs on Trio's virtual clock, where time only moves when every task is
waiting, so "extra latency" can only come from one session's write holding up another's progress.
The same 50 sessions run twice, alone and beside the slow writer, and must produce the same
counters: every frame echoed, none dropped or late, and the same added-latency histogram (caller
frame read -> agent took it). Loopback, bounded counts (50 x 100 frames)."""
from __future__ import annotations

import socket

import numpy as np
import trio

from fixtures_gateway import make_directory, open_session, start_gateway
from gateway import agents
from gateway.directory import AgentInfo, ChannelInfo
from gateway.limits import Limits

HEALTHY = 50
FRAMES = 100                    # 2 s of 20 ms frames each


class _FloodAgent:
    """Streams audio at the caller as fast as the session takes it (the slow writer's load)."""

    def __init__(self, config, limits):
        pass

    async def run(self, start, inbox, outbox):
        chunk = (np.sin(np.arange(4800) / 3.0) * 8000).astype("<i2").tobytes()
        for _ in range(300):                              # 60 s of audio, bounded
            await outbox.send(chunk)
        async for _ in inbox:
            pass


def _directory():
    return make_directory(
        extra_agents=[AgentInfo(id="flood", name="Flood", kind="flood")],
        extra_channels=[ChannelInfo(id="web-flood", type="web", status="active", agent_id="flood",
                                    allowed_origins=("http://localhost:8000",))])


async def _healthy(server, received: list) -> None:
    ws = await open_session(server, "/ws/agent/stream")
    got = 0

    async def reader():
        nonlocal got
        while got < FRAMES * 960:                         # 640 B at 16 kHz -> 960 B at 24 kHz
            message = await ws.receive()
            if type(message) is bytes:
                got += len(message)

    with trio.fail_after(120):
        async with trio.open_nursery() as n:
            n.start_soon(reader)
            for _ in range(FRAMES):
                await ws.send(b"\x10\x00" * 320)
                await trio.sleep(0.02)
    received.append(got)
    await ws.aclose()


async def _slow_writer(server, closed: trio.Event) -> None:
    ws = await open_session(server, "/ws/agent/flood")
    ws._stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    with trio.move_on_after(60):                          # never reads; bounded
        while server.metrics.close_codes.get(1011, 0) == 0:
            await trio.sleep(0.1)
    closed.set()
    await trio.aclose_forcefully(ws._stream)


async def _run(nursery, with_slow_writer: bool):
    server = await start_gateway(nursery, _directory(), Limits(socket_sndbuf=4096,
                                                               handshake_burst=HEALTHY + 10,
                                                               ping_interval_s=600))
    stats = []
    original = server.run_session

    async def spy(session):
        stats.append(session.stats)
        return await original(session)

    server.run_session = spy
    received: list[int] = []
    closed = trio.Event()
    async with trio.open_nursery() as n:
        if with_slow_writer:
            n.start_soon(_slow_writer, server, closed)
            await trio.sleep(0.5)                         # its write is already stuck
        for _ in range(HEALTHY):
            n.start_soon(_healthy, server, received)
    healthy = [s for s in stats if s.frames_in == FRAMES]          # the flood session sends none
    result = {"received": sorted(received), "sessions": len(healthy),
              "dropped": sum(s.dropped_in + s.dropped_out for s in healthy),
              "late": sum(s.late_frames for s in healthy),
              "latency_counts": [sum(c) for c in zip(*(s.added_latency.counts for s in healthy))],
              "close_1011": server.metrics.close_codes.get(1011, 0)}
    server.shutdown()
    return result, closed.is_set()


async def test_slow_writer_closed_1011_and_50_healthy_sessions_unaffected(nursery, autojump_clock,
                                                                          monkeypatch):
    monkeypatch.setitem(agents.CONNECTORS, "flood", _FloodAgent)
    alone, _ = await _run(nursery, with_slow_writer=False)
    beside, slow_closed = await _run(nursery, with_slow_writer=True)
    assert alone["received"] == [FRAMES * 960] * HEALTHY
    assert alone["sessions"] == HEALTHY and alone["dropped"] == 0 and alone["late"] == 0
    assert alone["close_1011"] == 0
    assert slow_closed and beside["close_1011"] == 1      # the slow writer, and only it
    for key in ("received", "sessions", "dropped", "late", "latency_counts"):
        assert beside[key] == alone[key], key
