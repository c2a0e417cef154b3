"""Activity persistence (control/console/activity.py): a gateway's finished sessions are recorded
with their stats; recording never breaks or delays the end of a session beyond its deadline."""
from __future__ import annotations

import pytest
import trio

from control.config import Settings
from control.console import activity
from control.secrets import generate_key, parse_key
from control.store import open_store
from gateway.metrics import SessionStats


class _Start:
    def __init__(self, channel_id):
        self.channel_id = channel_id


class _Session:
    """Only what ``attach`` reads from a gateway Session: id, start.channel_id, stats."""

    def __init__(self, sid, channel_id, frames):
        self.id, self.start, self.stats = sid, _Start(channel_id), SessionStats("twilio")
        self.stats.frames_in = frames
        self.stats.added_latency.record(0.002)


class _Gateway:
    def __init__(self):
        self.ran = []

    async def run_session(self, session):
        self.live_during = dict(activity.live_counts())
        await trio.sleep(0)
        self.ran.append(session.id)
        return session.stats


@pytest.fixture
def store(tmp_path):
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'a.db'}",
                        secret_key=parse_key(generate_key()))
    s = open_store(settings)
    yield s
    s.close()


async def test_attach_records_finished_sessions(store):
    # real clock: the store's worker threads are real time (an autojump clock would race them)
    gw = _Gateway()
    activity.attach(gw, store)
    stats = await gw.run_session(_Session("s1", "ch_a", 150))
    assert stats.frames_in == 150 and gw.ran == ["s1"]
    assert gw.live_during.get("ch_a") == 1 and "ch_a" not in activity.live_counts()
    await gw.run_session(_Session("s2", "ch_b", 10))
    rows = await store.read(activity.recent, None)
    assert [r.id for r in rows] == ["s2", "s1"]
    assert rows[1].channel_id == "ch_a" and rows[1].frames_in == 150
    assert rows[1].duration_s >= 0 and rows[1].p50_ms == pytest.approx(2.0, rel=0.25)
    only_a = await store.read(activity.recent, "ch_a")
    assert [r.id for r in only_a] == ["s1"]


async def test_recording_failure_does_not_break_the_session(store):
    gw = _Gateway()
    activity.attach(gw, store)
    store.close()                                 # every write now fails
    activity._ready.discard(store)
    stats = await gw.run_session(_Session("s3", "ch_a", 1))
    assert stats.frames_in == 1


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_table_is_bounded(database_url, monkeypatch):
    store = open_store(Settings(database_url=database_url, secret_key=parse_key(generate_key())))
    monkeypatch.setattr(activity, "KEEP", 5)
    store.run_sync(activity._ensure)
    store.run_sync(activity._ensure)              # idempotent
    for i in range(8):
        rec = activity.from_stats(f"s{i}", "ch", 1_790_000_000 + i, 1.0, SessionStats())
        store.run_sync(activity.insert, rec)
    ids = [r.id for r in store.run_sync(activity.recent, None)]
    assert ids == ["s7", "s6", "s5", "s4", "s3"]
    store.close()
    assert activity.latency_chart([])["empty"]


async def test_real_gateway_session_is_recorded(store, nursery):
    """Through a real GatewayServer on 127.0.0.1: a widget session's stats land in the table."""
    from fixtures_gateway import open_session, receive_json, start_gateway

    gw = await start_gateway(nursery)
    activity.attach(gw, store)
    await activity.ensure(store)
    ws = await open_session(gw)
    for _ in range(3):
        await ws.send(b"\x00\x00" * 320)
    await ws.send_text(b'{"type":"text","text":"x"}')
    await receive_json(ws, "transcript")
    assert activity.live_counts()["web1"] == 1
    await ws.aclose()
    with trio.fail_after(30):                    # a bound, not a measurement
        while not await store.read(activity.recent, "web1"):
            await trio.sleep(0.05)
    [rec] = await store.read(activity.recent, "web1")
    assert rec.frames_in == 3 and rec.kind == "web" and rec.end_reason
    assert "web1" not in activity.live_counts()
    gw.shutdown()
