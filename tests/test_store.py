"""The store on SQLite and PostgreSQL: migrations, compare-and-set updates, transactions, the
directory the media plane reads (cached, refreshed on change)."""
from __future__ import annotations

import msgspec
import pytest
import trio

from control.config import Settings
from control.secrets import SecretBox, generate_key, parse_key
from control.store import MIGRATIONS, Migration, Store, migrate, open_store, pending, repo
from control.store.db import open_database
from control.store.directory import StoreDirectory

BACKENDS = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)


@pytest.fixture
def store(database_url, tmp_path):
    settings = Settings(database_url=database_url, secret_key=parse_key(generate_key()))
    s = open_store(settings)
    yield s
    s.close()


def _channel(cid="ch_1", **kw) -> repo.ChannelRow:
    now = repo.now_iso()
    return repo.ChannelRow(id=cid, name="c", type="web", created_at=now, updated_at=now, **kw)


def _agent(aid="ag_1") -> repo.AgentRow:
    now = repo.now_iso()
    return repo.AgentRow(id=aid, name="a", kind="echo", created_at=now, updated_at=now)


@BACKENDS
def test_migrations_are_idempotent_and_extensible(database_url):
    db = open_database(database_url)
    try:
        assert migrate(db) == [m.version for m in MIGRATIONS]
        assert migrate(db) == []
        extra = [*MIGRATIONS, Migration(len(MIGRATIONS) + 1, "inbox", [
            "CREATE TABLE inbox (id TEXT PRIMARY KEY, body TEXT NOT NULL)"])]
        assert pending(db, extra) == [len(MIGRATIONS) + 1]
        assert migrate(db, extra) == [len(MIGRATIONS) + 1]
        with db.transaction() as tx:
            tx.execute("INSERT INTO inbox (id, body) VALUES (?, ?)", ("m1", "hi"))
            assert tx.one("SELECT body FROM inbox WHERE id = ?", ("m1",)) == {"body": "hi"}
    finally:
        db.close()


@BACKENDS
def test_compare_and_set_update(store):
    store.run_sync(repo.insert_agent, _agent())
    store.run_sync(repo.insert_channel, _channel())
    row = store.run_sync(repo.get_channel, "ch_1")
    first = store.run_sync(repo.update_channel, msgspec.structs.replace(row, agent_id="ag_1"))
    assert first.version == row.version + 1 and first.agent_id == "ag_1"
    # A writer that read the same version loses: nothing half-written.
    assert store.run_sync(repo.update_channel, msgspec.structs.replace(row, name="stale")) is None
    assert store.run_sync(repo.get_channel, "ch_1").name == "c"


@BACKENDS
def test_transaction_rolls_back_as_a_whole(store):
    def half(tx):
        repo.insert_channel(tx, _channel("ch_x"))
        raise RuntimeError("crash mid-transaction")

    before = store.run_sync(repo.config_version)
    with pytest.raises(RuntimeError):
        store.run_sync(half)
    assert store.run_sync(repo.get_channel, "ch_x") is None
    assert store.run_sync(repo.config_version) == before


@BACKENDS
def test_delete_target_in_use_names_channels(store):
    store.run_sync(repo.insert_agent, _agent())
    store.run_sync(repo.insert_channel, _channel("ch_a", agent_id="ag_1"))
    store.run_sync(repo.insert_channel, _channel("ch_b", agent_id="ag_1"))
    assert store.run_sync(repo.delete_target, "agent", "ag_1") == ["ch_a", "ch_b"]
    assert store.run_sync(repo.get_agent, "ag_1") is not None
    assert store.run_sync(repo.delete_target, "agent", "nope") is False


@BACKENDS
async def test_concurrent_writers_serialize(store):
    """20 concurrent compare-and-set writers on one row: exactly the successful ones count."""
    store.run_sync(repo.insert_channel, _channel())
    wins = []

    async def writer(i):
        row = await store.read(repo.get_channel, "ch_1")
        new = await store.run(repo.update_channel, msgspec.structs.replace(row, name=f"w{i}"))
        if new is not None:
            wins.append(new.version)

    async with trio.open_nursery() as n:
        for i in range(20):
            n.start_soon(writer, i)
    final = await store.read(repo.get_channel, "ch_1")
    assert wins and sorted(wins) == list(range(2, 2 + len(wins)))
    assert final.version == 1 + len(wins)


@BACKENDS
async def test_directory_reloads_on_change(store, database_url, mock_clock):
    directory = StoreDirectory(store, refresh_s=30)
    assert await directory.get_channel("ch_1") is None
    await store.run(repo.insert_agent, _agent())
    await store.run(repo.insert_channel, _channel(agent_id="ag_1", allowed_origins=["https://a.example"],
                                                  status="active"))
    # A write through the same Store is seen at once.
    info = await directory.get_channel("ch_1")
    assert info.status == "active" and info.allowed_origins == ("https://a.example",)
    assert (await directory.get_agent("ag_1")).kind == "echo"
    assert [c.id for c in await directory.web_channels_for("agent", "ag_1")] == ["ch_1"]
    reloads = directory.reloads

    # A write by another node (another Store on the same database) is seen after refresh_s.
    other = Store(open_database(database_url), store.box)
    try:
        row = other.run_sync(repo.get_channel, "ch_1")
        other.run_sync(repo.update_channel, msgspec.structs.replace(row, status="inactive"))
        assert (await directory.get_channel("ch_1")).status == "active"     # cached
        mock_clock.jump(31)
        assert (await directory.get_channel("ch_1")).status == "inactive"
        assert directory.reloads == reloads + 1
        # Nothing changed: the next refresh only reads the version, no reload.
        mock_clock.jump(31)
        await directory.get_flow("nope")
        assert directory.reloads == reloads + 1
    finally:
        other.close()


def test_unsupported_database_url():
    from control.store import StoreError
    with pytest.raises(StoreError, match="unsupported DATABASE_URL"):
        open_database("mysql://x")


def test_encrypted_column_binds_row(store):
    box: SecretBox = store.box
    ct = box.encrypt_json({"auth_token": "t0ps3cret"}, b"channel:ch_1")
    store.run_sync(repo.insert_channel, _channel(credentials=ct, provider="twilio"))
    raw = store.run_sync(lambda tx: tx.one("SELECT credentials FROM channels WHERE id = ?", ("ch_1",)))
    assert "t0ps3cret" not in raw["credentials"]
    assert box.decrypt_json(raw["credentials"], b"channel:ch_1") == {"auth_token": "t0ps3cret"}
