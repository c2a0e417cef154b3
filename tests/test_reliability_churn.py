"""RELIABILITY 9: connect -> start -> 10 frames -> stop -> close, many times, on 127.0.0.1.

Each cycle is a whole conversation: the handshake, the gateway's ``start`` to the agent, 10 audio
frames (echoed back), the caller's ``end`` (the stop), the gateway's ``end`` + close 1000. After the
run, open file descriptors and live Trio tasks are back at their baseline, the number of objects
the garbage collector tracks is back near its baseline, the process RSS grew by less than a few MB,
and every session ended with the caller's reason. (Not tracemalloc: its own bookkeeping grows the
RSS by more than the few MB being checked, and it triples the run time.)

CI runs ``CONVERSE_CHURN_CYCLES`` cycles (default 1000, ~10 s on the busy 2-core box); the
promise's 10,000 is the same test with ``CONVERSE_CHURN_CYCLES=10000`` (see README, Reliability).
Virtual clock: the pacing and drain timers cost no real time.
"""
from __future__ import annotations

import gc
import logging
import os

import pytest
import trio

from fixtures_gateway import open_session, start_gateway
from gateway import transport
from gateway.limits import Limits
from gateway.protocols import canonical
from gateway.protocols.canonical import End

CYCLES = int(os.environ.get("CONVERSE_CHURN_CYCLES", "1000"))
WARMUP = 50
FEW_MB = 4 * 1024 * 1024


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _live_tasks() -> int:
    todo, count = [trio.lowlevel.current_root_task()], 0
    while todo:
        task = todo.pop()
        count += 1
        for nursery in task.child_nurseries:
            todo.extend(nursery.child_tasks)
    return count


async def _cycle(server, ended: list) -> None:
    with trio.fail_after(30):
        ws = await open_session(server, "/ws/agent/echo")
        for _ in range(10):
            await ws.send(b"\x01\x00" * 320)
        await ws.send_text(canonical.encode(End(reason="churn")))
        echoed = 0
        try:
            while True:
                message = await ws.receive()
                if type(message) is bytes:
                    echoed += 1
                elif isinstance(canonical.decode(message), End):
                    ended.append(echoed)
        except transport.ConnectionClosed as closed:
            assert closed.code == 1000, closed.code
        await ws.aclose()


async def _settle(server) -> None:
    with trio.fail_after(60):
        while server.sessions:
            await trio.sleep(0.1)
    await trio.sleep(1)
    gc.collect()


@pytest.fixture
def quiet_logging():
    """pytest keeps every captured log record in memory (a few per connection at INFO, and the
    wire logger is pinned at INFO whatever the root level): that would be the test's growth, not
    the gateway's. ``logging.disable`` drops them before any handler sees them."""
    logging.disable(logging.INFO)
    yield
    logging.disable(logging.NOTSET)


async def test_churn_returns_fds_tasks_and_memory_to_baseline(nursery, autojump_clock,
                                                              quiet_logging):
    server = await start_gateway(nursery, limits=Limits(handshake_burst=CYCLES + WARMUP + 10))
    ended: list[int] = []
    stats = {"sessions": 0, "ten_frames": 0, "reasons": set()}   # counters: holding every
    original = server.run_session                                 # SessionStats would grow

    async def spy(session):
        try:
            return await original(session)
        finally:
            stats["sessions"] += 1
            stats["ten_frames"] += session.stats.frames_in == 10
            stats["reasons"].add(session.stats.end_reason)

    server.run_session = spy
    for _ in range(WARMUP):                       # caches, allocator arenas, first-use imports
        await _cycle(server, ended)
    await _settle(server)
    stats.update(sessions=0, ten_frames=0, reasons=set())
    fds, tasks, rss, objects = _open_fds(), _live_tasks(), _rss(), len(gc.get_objects())
    for _ in range(CYCLES):
        await _cycle(server, ended)
    await _settle(server)
    assert _open_fds() <= fds
    assert _live_tasks() <= tasks
    # a leaked session, stream or task would leave dozens of objects per cycle
    assert len(gc.get_objects()) - objects < CYCLES + 2000
    assert _rss() - rss < FEW_MB, _rss() - rss
    assert len(ended) == CYCLES + WARMUP             # every conversation got the gateway's end
    assert stats["sessions"] == stats["ten_frames"] == CYCLES
    assert stats["reasons"] == {"caller: churn"}, stats["reasons"]
    assert server.metrics.sessions_total == CYCLES + WARMUP and not server.metrics.live
    server.shutdown()
