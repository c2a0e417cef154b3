"""RELIABILITY 11: an agent that stops consuming for 10 s. The gateway's reader keeps draining the
caller's socket (the kernel's receive queue on our side stays near empty), the per-session queue
stays at its bound and drops the oldest audio (counted), Python memory stays flat over the stall,
and the session survives: afterwards a text round trip works and nothing was closed.

Virtual clock (the 10 s cost no real time), 127.0.0.1, 500 frames."""
from __future__ import annotations

import array
import fcntl
import termios
import tracemalloc

import trio

from fixtures_gateway import make_directory, open_session, receive_json, start_gateway
from gateway import agents
from gateway.directory import AgentInfo, ChannelInfo
from gateway.limits import Limits
from gateway.protocols import canonical
from gateway.protocols.canonical import Text, Transcript

QUEUE = 16
FRAMES = 500                     # 10 s of 20 ms frames


class _StallingAgent:
    """Takes nothing for 10 s, then answers text like the echo agent."""

    def __init__(self, config, limits):
        pass

    async def run(self, start, inbox, outbox):
        await trio.sleep(10)
        async for item in inbox:
            if isinstance(item, Text):
                await outbox.send(Transcript(role="assistant", text=f"back: {item.text}"))


def _unread_bytes(sock) -> int:
    buf = array.array("i", [0])
    fcntl.ioctl(sock.fileno(), termios.FIONREAD, buf)
    return buf[0]


async def test_stalled_consumer_bounded_counted_flat_and_survives(nursery, autojump_clock,
                                                                  monkeypatch):
    monkeypatch.setitem(agents.CONNECTORS, "stall", _StallingAgent)
    directory = make_directory(
        extra_agents=[AgentInfo(id="stall", name="Stall", kind="stall")],
        extra_channels=[ChannelInfo(id="web-stall", type="web", status="active",
                                    agent_id="stall", allowed_origins=("http://localhost:8000",))])
    server = await start_gateway(nursery, directory, Limits(agent_queue=QUEUE))
    ws = await open_session(server, "/ws/agent/stall")
    session = None
    unread, queued = [], []
    tracemalloc.start()
    try:
        for i in range(FRAMES):
            await ws.send(bytes(640))
            await trio.sleep(0.02)
            session = session or next(iter(server.sessions))
            sock = session.caller.ws._stream.socket
            unread.append(_unread_bytes(sock))
            queued.append(len(session.inbox))
            if i == 100:
                heap_at_2s = tracemalloc.get_traced_memory()[0]
        growth = tracemalloc.get_traced_memory()[0] - heap_at_2s
    finally:
        tracemalloc.stop()
    assert max(queued) <= QUEUE                          # bounded
    assert max(unread) < 16 * 1024, max(unread)          # the reader kept draining the socket
    # 8 s of audio kept would be 256 KB; a bounded queue keeps ~10 KB whatever the stall
    assert growth < 64 * 1024, growth
    assert session.stats.frames_in == FRAMES
    assert session.stats.dropped_in >= FRAMES - QUEUE - 25   # oldest dropped, counted
    with trio.fail_after(30):
        await ws.send_text(canonical.encode(Text(text="after the stall")))
        assert (await receive_json(ws, "transcript")).text == "back: after the stall"
    assert session.stats.close_code is None and session in server.sessions
    await ws.aclose()
    server.shutdown()
