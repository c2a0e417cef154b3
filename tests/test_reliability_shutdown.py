"""RELIABILITY 13, the case the polite-client tests leave open: shutdown while peers misbehave.
Beside healthy sessions there are a caller that never reads (its socket full, our writes blocked),
an agent that ignores the end of its inbox, and a TCP connection that never finishes its handshake.
``serve()`` must still return by the drain deadline, every session must carry an end reason, new
connections must be refused, and no task may outlive the server's nursery.

Virtual clock; 127.0.0.1; a handful of connections."""
from __future__ import annotations

import socket

import numpy as np
import trio

from fixtures_gateway import SECRET, make_directory, open_session, receive_json
from gateway import agents, transport
from gateway.directory import AgentInfo, ChannelInfo
from gateway.limits import Limits
from gateway.server import GatewayServer

DRAIN_S = 3.0


class _StubbornAgent:
    """Floods audio, then never returns even when its inbox ends (it must be cancelled)."""

    def __init__(self, config, limits):
        pass

    async def run(self, start, inbox, outbox):
        chunk = (np.sin(np.arange(4800) / 3.0) * 8000).astype("<i2").tobytes()
        for _ in range(300):
            await outbox.send(chunk)
        await trio.sleep_forever()


def _live_tasks() -> int:
    todo, count = [trio.lowlevel.current_root_task()], 0
    while todo:
        task = todo.pop()
        count += 1
        for nursery in task.child_nurseries:
            todo.extend(nursery.child_tasks)
    return count


async def test_shutdown_with_misbehaving_peers_returns_by_the_drain_deadline(autojump_clock,
                                                                             monkeypatch):
    monkeypatch.setitem(agents.CONNECTORS, "stubborn", _StubbornAgent)
    directory = make_directory(
        extra_agents=[AgentInfo(id="stubborn", name="Stubborn", kind="stubborn")],
        extra_channels=[ChannelInfo(id="web-stubborn", type="web", status="active",
                                    agent_id="stubborn",
                                    allowed_origins=("http://localhost:8000",))])
    baseline = _live_tasks()
    server = GatewayServer(directory, SECRET, Limits(drain_timeout_s=DRAIN_S, socket_sndbuf=4096,
                                                     ping_interval_s=600))
    stats, results = [], []
    original = server.run_session

    async def spy(session):
        stats.append(session.stats)
        return await original(session)

    server.run_session = spy

    async def polite(ws):
        end = await receive_json(ws, "end")
        try:
            while True:
                await ws.receive()
        except transport.ConnectionClosed as closed:
            results.append((end.reason, closed.code))

    async with trio.open_nursery() as outer:
        await outer.start(server.serve, "127.0.0.1", 0)
        healthy = [await open_session(server) for _ in range(3)]
        stuck = await open_session(server, "/ws/agent/stubborn")
        stuck._stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        half = await trio.open_tcp_stream("127.0.0.1", server.port)     # never sends a request
        await trio.sleep(1)                                   # the stuck caller's buffers fill
        async with trio.open_nursery() as clients:
            for ws in healthy:
                clients.start_soon(polite, ws)
            await trio.sleep(0.1)
            began = trio.current_time()
            server.shutdown()
        # the outer nursery ends by itself: serve() returned
    took = trio.current_time() - began
    assert took <= DRAIN_S + 0.5, took                   # virtual time: the deadline, not luck
    assert sorted(results) == [("shutdown", 1001)] * 3
    assert len(stats) == 4 and all(s.end_reason for s in stats), [s.end_reason for s in stats]
    assert not server.sessions
    assert _live_tasks() == baseline                     # nothing outlived the server
    try:
        await open_session(server)
    except transport.HandshakeError:
        pass
    else:
        raise AssertionError("a connection was accepted after shutdown")
    for stream in (stuck._stream, half):
        await trio.aclose_forcefully(stream)
