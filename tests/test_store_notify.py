"""Configuration changes reach other nodes through PostgreSQL LISTEN/NOTIFY.

A real ``converse control`` subprocess commits changes through its API; a :class:`StoreDirectory` in
this process, with every poll set to an hour, must see them: only a notification can explain that.
The listener survives its backend being terminated, and closing the directory leaves no thread
running and no session on the server. Waits are bounded loops; the limit only catches a hang.
"""
from __future__ import annotations

import psycopg
import pytest
import trio
import trio.testing

from control.config import Settings
from control.secrets import generate_key, parse_key
from control.store import open_store, repo
from control.store.directory import StoreDirectory
from control.store.notify import CONFIG_CHANNEL, ConfigListener
from fixtures_control import create_database, start_control_server

NEVER_S = 3600.0     # poll intervals in these tests: nothing here waits that long
HANG_GUARD_S = 60.0  # a bounded wait's limit; reaching it means the feature is broken


@pytest.fixture(scope="module")
def pg_url(postgres_admin_url):
    return create_database(postgres_admin_url)


@pytest.fixture(scope="module")
def control(pg_url, tmp_path_factory):
    server = start_control_server(tmp_path_factory.mktemp("notify-control"), pg_url,
                                  {"CONVERSE_SECRET_KEY": generate_key()})
    yield server
    server.stop()


@pytest.fixture
def store(pg_url):
    s = open_store(Settings(database_url=pg_url, secret_key=parse_key(generate_key())))
    yield s
    s.close()


async def eventually(check, what: str) -> None:
    """Poll ``check()`` (sync or async) until true; fail after HANG_GUARD_S."""
    with trio.move_on_after(HANG_GUARD_S):
        while True:
            ok = check()
            if hasattr(ok, "__await__"):
                ok = await ok
            if ok:
                return
            await trio.sleep(0.05)
    pytest.fail(f"never happened: {what}")


def api_call(control, method: str, path: str, **kw) -> dict:
    with control.client() as client:
        r = client.request(method, path, **kw)
    assert r.status_code < 300, r.text
    return r.json()


async def api(control, method: str, path: str, **kw) -> dict:
    # The HTTP client blocks: keep it off the Trio thread so the listener keeps running.
    return await trio.to_thread.run_sync(lambda: api_call(control, method, path, **kw))


async def origins(directory: StoreDirectory, channel_id: str) -> tuple[str, ...] | None:
    info = await directory.get_channel(channel_id)
    return None if info is None else info.allowed_origins


def server_sql(url: str, sql: str, params=()) -> list[tuple]:
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


def backend_alive(url: str, pid: int) -> bool:
    return bool(server_sql(url, "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)))


async def test_change_by_another_process_arrives_by_notify(control, store):
    directory = StoreDirectory(store, refresh_s=NEVER_S, safety_poll_s=NEVER_S)
    async with trio.open_nursery() as nursery:
        await nursery.start(directory.listen)
        assert directory.listener.connected and directory.listener.connects == 1
        ch = await api(control, "POST", "/api/v1/channels",
                       json={"name": "n", "type": "web", "allowed_origins": ["https://a.example"]})
        await eventually(lambda: origins(directory, ch["id"]), "the new channel appears")
        assert await origins(directory, ch["id"]) == ("https://a.example",)
        reloads, heard = directory.reloads, directory.listener.notifications

        await api(control, "PATCH", f"/api/v1/channels/{ch['id']}",
                  json={"allowed_origins": ["https://b.example"]})
        await eventually(lambda: _is(directory, ch["id"], ("https://b.example",)),
                         "the PATCH made in the control process reaches this directory")
        assert directory.listener.notifications > heard
        assert directory.reloads > reloads
        directory.close()
    assert not directory.listener.connected


async def _is(directory, channel_id, expected) -> bool:
    return await origins(directory, channel_id) == expected


async def test_listener_survives_backend_termination(control, store, pg_url):
    directory = StoreDirectory(store, refresh_s=NEVER_S, safety_poll_s=NEVER_S)
    ch = await api(control, "POST", "/api/v1/channels",
                   json={"name": "t", "type": "web", "allowed_origins": ["https://a.example"]})
    async with trio.open_nursery() as nursery:
        await nursery.start(directory.listen)
        listener = directory.listener
        await eventually(lambda: _is(directory, ch["id"], ("https://a.example",)), "first load")
        first_pid = listener.backend_pid
        assert server_sql(pg_url, "SELECT pg_terminate_backend(%s)", (first_pid,)) == [(True,)]
        # Committed while the listener is (probably) down: the check after reconnecting finds it.
        await api(control, "PATCH", f"/api/v1/channels/{ch['id']}",
                  json={"allowed_origins": ["https://b.example"]})
        await eventually(lambda: _is(directory, ch["id"], ("https://b.example",)),
                         "a change made around the termination")
        await eventually(lambda: listener.connects >= 2 and listener.connected, "reconnected")
        assert listener.failures >= 1 and listener.backend_pid != first_pid
        await eventually(lambda: not backend_alive(pg_url, first_pid), "the old backend is gone")

        # Listening again: a later change arrives by notification.
        heard = listener.notifications
        await api(control, "PATCH", f"/api/v1/channels/{ch['id']}",
                  json={"allowed_origins": ["https://c.example"]})
        await eventually(lambda: _is(directory, ch["id"], ("https://c.example",)),
                         "a change after the reconnect")
        assert listener.notifications > heard
        directory.close()


async def test_close_stops_the_listener_thread_and_session(store, pg_url):
    directory = StoreDirectory(store, refresh_s=NEVER_S, safety_poll_s=NEVER_S)
    async with trio.open_nursery() as nursery:
        await nursery.start(directory.listen)
        listener = directory.listener
        pid = listener.backend_pid
        # The listener spends its life blocked in a worker thread waiting for notifications.
        await eventually(lambda: listener.busy_threads == 1, "the listener waits in a thread")
        assert backend_alive(pg_url, pid)
        directory.close()
    # listen() has returned: its thread has finished its last wait and the session is closed.
    assert listener.busy_threads == 0 and not listener.connected
    await eventually(lambda: not backend_alive(pg_url, pid), "the LISTEN session ends")
    # Closed for good: listening again returns at once.
    async with trio.open_nursery() as nursery:
        await nursery.start(directory.listen)
    assert directory.listener is listener


async def test_only_committed_versions_are_announced(store, pg_url):
    """NOTIFY is transactional: a rolled-back change announces nothing; a committed one announces
    its new version, in commit order."""
    heard: list[int | None] = []

    async def on_change(version):
        heard.append(version)

    def rolled_back(tx):
        repo.bump_config_version(tx)
        raise RuntimeError("abort")

    listener = ConfigListener(store.db.url)
    async with trio.open_nursery() as nursery:
        await nursery.start(listener.run, on_change)
        assert heard == [None]          # "check now": told once per (re)connect
        before = await store.read(repo.config_version)
        with pytest.raises(RuntimeError):
            await store.run(rolled_back)
        await store.run(repo.bump_config_version)
        await eventually(lambda: len(heard) >= 2, "the committed bump is announced")
        assert heard == [None, before + 1]
        # A foreign payload on our channel means "check", not a crash.
        server_sql(pg_url, "SELECT pg_notify(%s, 'garbage')", (CONFIG_CHANNEL,))
        await eventually(lambda: len(heard) >= 3, "the foreign payload")
        assert heard[2] is None
        nursery.cancel_scope.cancel()
    assert listener.busy_threads == 0 and not listener.connected


async def test_unreachable_database_does_not_hold_startup():
    """The first attempt fails (nothing listens on the port): run() still reports started, then
    keeps retrying with backoff until cancelled."""
    async def on_change(version):
        raise AssertionError("never connected")

    from fixtures_control import free_port
    listener = ConfigListener(f"postgresql://postgres@127.0.0.1:{free_port()}/x",
                              backoff_min_s=0.01, backoff_max_s=0.05)
    async with trio.open_nursery() as nursery:
        await nursery.start(listener.run, on_change)
        await eventually(lambda: listener.failures >= 3, "retries")
        nursery.cancel_scope.cancel()
    assert listener.connects == 0 and listener.busy_threads == 0


async def test_sqlite_directory_does_not_listen(tmp_path):
    s = open_store(Settings(database_url=f"sqlite:///{tmp_path / 'c.db'}",
                            secret_key=parse_key(generate_key())))
    try:
        directory = StoreDirectory(s)
        async with trio.open_nursery() as nursery:
            await nursery.start(directory.listen)      # returns at once: SQLite polls
        assert directory.listener is None
    finally:
        s.close()


class _GatedStore:
    """The real store, but each snapshot load, once read, waits for ``gate``: the database answered
    before a concurrent commit, the answer arrives after its notification."""

    def __init__(self, store):
        self._store, self.gate, self.loading = store, trio.Event(), trio.Event()

    def __getattr__(self, name):
        return getattr(self._store, name)

    async def read(self, fn, *args):
        result = await self._store.read(fn, *args)
        if fn.__name__ == "_load":
            self.loading.set()
            await self.gate.wait()
        return result


async def test_notification_during_an_inflight_check_is_not_lost(store, pg_url):
    gated = _GatedStore(store)
    directory = StoreDirectory(gated, refresh_s=NEVER_S, safety_poll_s=NEVER_S)
    other = open_store(Settings(database_url=pg_url, secret_key=parse_key(generate_key())))
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(directory.get_channel, "ch_race")   # loads: no such channel yet
            await gated.loading.wait()
            now = repo.now_iso()
            await other.run(repo.insert_channel, repo.ChannelRow(
                id="ch_race", name="r", type="web", created_at=now, updated_at=now))
            version = await other.read(repo.config_version)
            nursery.start_soon(directory._on_change, version)      # as the listener would
            await trio.testing.wait_all_tasks_blocked()
            gated.gate.set()
        # The check that was in flight must not count as having seen the later notification.
        assert await directory.get_channel("ch_race") is not None
    finally:
        other.close()
