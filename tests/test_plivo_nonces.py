"""Plivo's ``X-Plivo-Signature-V3-Nonce`` replay window lives in the store (migration 4,
:mod:`control.store.nonces`), so it is shared by every control node on one database.

* ``claim_nonce`` on SQLite and PostgreSQL: fresh / replay / expiry at the window's edge, a replay
  does not extend the window, bounded pruning of expired rows, over-long nonces never stored.
* Migration 4 on a database at version 3: the table, its primary key and its time index.
* Through the real app (``create_app``, in-process Quart client, real store): a replay within the
  window is a 403 "replayed nonce"; the same nonce once its row has expired is accepted; an
  unsigned or badly signed request never writes a row.
* Two apps on one database (two control nodes behind a load balancer): a request accepted by A
  and replayed, byte for byte, to B is refused; 20 concurrent identical requests spread over
  both are accepted exactly once.

Requests are signed with ``emulators.signing.plivo_v3_signature`` (written from the protocol, not
the SDK the product validates with). No clock is faked: expiry is shown by passing ``now`` to
``claim_nonce`` or by seeding a row seen longer ago than the window.
"""
from __future__ import annotations

import logging
import secrets

import pytest
import trio

from control.api import create_app
from control.api.voice_webhooks import NONCE_WINDOW_S
from control.config import Settings
from control.secrets import derive_token_secret, generate_key, parse_key
from control.store import MIGRATIONS, channel_aad, migrate, open_store, repo
from control.store import nonces
from control.store.db import open_database
from emulators.signing import plivo_v3_signature

BACKENDS = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
WINDOW_MS = int(NONCE_WINDOW_S * 1000)
TOKEN = "plivo-auth-token-123"
CHANNEL = "ch_plivo"
PUBLIC = "https://pub.example"
PATH = f"/api/v1/webhooks/plivo/{CHANNEL}"
DEADLINE_S = 60      # a bound on a hung test, not a measurement


def _count(store) -> int:
    return store.run_sync(lambda tx: tx.one("SELECT COUNT(*) AS n FROM webhook_nonces")["n"])


def _seen_at(store, nonce: str, provider: str = "plivo") -> int | None:
    row = store.run_sync(lambda tx: tx.one(
        "SELECT seen_at_ms FROM webhook_nonces WHERE provider = ? AND nonce = ?",
        (provider, nonce)))
    return None if row is None else int(row["seen_at_ms"])


@pytest.fixture
def settings(database_url):
    key = parse_key(generate_key())
    return Settings(database_url=database_url, secret_key=key, public_url=PUBLIC,
                    token_secret=derive_token_secret(key))


@pytest.fixture
def store(settings):
    s = open_store(settings)
    yield s
    s.close()


# ------------------------------------------------------------------------ the repository
@BACKENDS
def test_claim_fresh_replay_and_expiry(store):
    t0 = nonces.now_ms()
    claim = lambda nonce, now, provider="plivo": store.run_sync(     # noqa: E731
        nonces.claim_nonce, provider, nonce, now, WINDOW_MS)
    assert claim("n1", t0) is True
    assert claim("n1", t0) is False                        # the same instant
    assert claim("n1", t0 + WINDOW_MS - 1) is False        # last millisecond of the window
    assert _seen_at(store, "n1") == t0                     # a replay does not extend the window
    assert claim("n1", t0 + WINDOW_MS) is True             # expired: fresh again, window restarts
    assert _seen_at(store, "n1") == t0 + WINDOW_MS
    assert claim("n1", t0 + WINDOW_MS + 1) is False
    assert claim("n1", t0, provider="other") is True       # another provider's nonce space
    assert claim("n2", t0) is True


@BACKENDS
def test_unacceptable_nonces_are_never_stored(store):
    now = nonces.now_ms()
    for bad in ("x" * (nonces.MAX_NONCE_CHARS + 1), "", "a\x00b", "a\nb"):
        assert store.run_sync(nonces.claim_nonce, "plivo", bad, now, WINDOW_MS) is False
    assert _count(store) == 0
    longest = "9" * nonces.MAX_NONCE_CHARS
    assert store.run_sync(nonces.claim_nonce, "plivo", longest, now, WINDOW_MS) is True
    assert store.run_sync(nonces.claim_nonce, "plivo", longest, now, WINDOW_MS) is False


@BACKENDS
def test_expired_rows_are_pruned_in_bounded_batches(store):
    """A backlog of expired rows (a node idle for a while) drains PRUNE_BATCH rows per claim,
    oldest first; rows still inside the window are never pruned."""
    now = nonces.now_ms()
    old = now - WINDOW_MS - 10_000
    backlog = 2 * nonces.PRUNE_BATCH + 7

    def seed(tx):
        for i in range(backlog):
            tx.execute("INSERT INTO webhook_nonces (provider, nonce, seen_at_ms) VALUES (?, ?, ?)",
                       ("plivo", f"old{i}", old + i))
        tx.execute("INSERT INTO webhook_nonces (provider, nonce, seen_at_ms) VALUES (?, ?, ?)",
                   ("plivo", "recent", now - WINDOW_MS + 1))
    store.run_sync(seed)
    assert store.run_sync(nonces.claim_nonce, "plivo", "c1", now, WINDOW_MS)
    assert _count(store) == backlog + 2 - nonces.PRUNE_BATCH
    assert _seen_at(store, f"old{nonces.PRUNE_BATCH - 1}") is None           # oldest first
    assert _seen_at(store, f"old{nonces.PRUNE_BATCH}") is not None
    for i in range(2, 5):
        assert store.run_sync(nonces.claim_nonce, "plivo", f"c{i}", now, WINDOW_MS)
    # The backlog is gone; "recent" and the four claims stay.
    assert _count(store) == 1 + 4 and _seen_at(store, "recent") is not None


# ----------------------------------------------------------------------------- migration 4
@BACKENDS
def test_migration_4_adds_the_nonce_table(database_url):
    assert [m.version for m in MIGRATIONS][-1] == 4
    db = open_database(database_url)
    try:
        assert migrate(db, [m for m in MIGRATIONS if m.version < 4]) == [1, 2, 3]
        assert migrate(db) == [4]
        assert migrate(db) == []
        with db.transaction() as tx:
            if tx.dialect == "postgres":
                indexes = {r["indexname"] for r in tx.execute(
                    "SELECT indexname FROM pg_indexes WHERE tablename = 'webhook_nonces'")}
            else:
                indexes = {r["name"] for r in tx.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'index' "
                    "AND tbl_name = 'webhook_nonces'")}
            assert "webhook_nonces_seen_at" in indexes
            tx.execute("INSERT INTO webhook_nonces (provider, nonce, seen_at_ms) VALUES (?, ?, ?)",
                       ("plivo", "n", 1))
        with pytest.raises(Exception):      # the primary key: one row per (provider, nonce)
            with db.transaction() as tx:
                tx.execute("INSERT INTO webhook_nonces (provider, nonce, seen_at_ms) "
                           "VALUES (?, ?, ?)", ("plivo", "n", 2))
        with db.transaction() as tx:
            assert tx.one("SELECT seen_at_ms FROM webhook_nonces")["seen_at_ms"] == 1
    finally:
        db.close()


# ---------------------------------------------------------------------- through the app(s)
def _insert_channel(store) -> None:
    now = repo.now_iso()
    ct = store.box.encrypt_json({"auth_id": "MA123", "auth_token": TOKEN}, channel_aad(CHANNEL))
    store.run_sync(repo.insert_channel, repo.ChannelRow(
        id=CHANNEL, name="p", type="voice", provider="plivo", credentials=ct, status="active",
        phone_number="+14155550100", created_at=now, updated_at=now))


def _signed(nonce: str, call: str = "call-1", token: str = TOKEN) -> tuple[dict, dict]:
    form = {"CallUUID": call, "From": "14155550123", "To": "14155550100"}
    headers = {"X-Plivo-Signature-V3": plivo_v3_signature(token, PUBLIC + PATH, nonce, form),
               "X-Plivo-Signature-V3-Nonce": nonce}
    return form, headers


async def _post(app, form: dict, headers: dict):
    response = await app.test_client().post(PATH, form=form, headers=headers)
    return response.status_code, await response.get_data(as_text=True)


@pytest.fixture
def app_and_store(settings, store):
    _insert_channel(store)
    return create_app(settings, store), store


@pytest.fixture
def two_nodes(settings, store):
    """Two control apps, each with its own store (connections, pool) on the same database."""
    _insert_channel(store)
    other = open_store(settings)
    try:
        yield (create_app(settings, store), store), (create_app(settings, other), other)
    finally:
        other.close()


async def test_replay_on_the_same_node_is_refused(app_and_store, caplog):
    app, store = app_and_store
    caplog.set_level(logging.WARNING, logger="converse.webhooks.voice")
    form, headers = _signed(secrets.token_hex(10))
    with trio.fail_after(DEADLINE_S):
        status, body = await _post(app, form, headers)
        assert status == 200 and "<Stream" in body, body
        status, body = await _post(app, form, headers)
    assert status == 403 and "forbidden" in body
    assert "replayed nonce" in caplog.text
    assert _count(store) == 1


async def test_nonce_is_accepted_again_once_expired(app_and_store):
    """A row seen longer ago than the window no longer blocks its nonce; one seen within it does.
    The row is seeded through ``claim_nonce`` with an earlier ``now``: the handler runs on the
    real clock, unfaked."""
    app, store = app_and_store
    now = nonces.now_ms()
    expired, live = secrets.token_hex(10), secrets.token_hex(10)
    assert store.run_sync(nonces.claim_nonce, "plivo", expired, now - WINDOW_MS - 5_000, WINDOW_MS)
    assert store.run_sync(nonces.claim_nonce, "plivo", live, now - WINDOW_MS + 120_000, WINDOW_MS)
    with trio.fail_after(DEADLINE_S):
        status, body = await _post(app, *_signed(expired))
        assert status == 200 and "<Stream" in body, body
        assert _seen_at(store, expired) >= now           # the window restarted at this request
        status, _ = await _post(app, *_signed(expired))
        assert status == 403
        status, _ = await _post(app, *_signed(live))
        assert status == 403


async def test_only_a_signed_request_writes_a_nonce(app_and_store, caplog):
    """Signature first: unsigned, badly signed or over-long-nonce requests are refused without a
    row being written, and do not spend the nonce of the genuine request that follows."""
    app, store = app_and_store
    caplog.set_level(logging.WARNING, logger="converse.webhooks.voice")
    nonce = secrets.token_hex(10)
    form, headers = _signed(nonce)
    forged = _signed(nonce, token="not-the-token")[1]
    long_nonce = "7" * (nonces.MAX_NONCE_CHARS + 1)
    too_long = _signed(long_nonce)[1]
    with trio.fail_after(DEADLINE_S):
        for bad in ({"X-Plivo-Signature-V3-Nonce": nonce}, forged, too_long,
                    dict(headers, **{"X-Plivo-Signature-V3": headers["X-Plivo-Signature-V3"][:-4]
                                     + "AAA="})):
            assert (await _post(app, form, bad))[0] == 403, bad
        assert _count(store) == 0
        assert (await _post(app, form, headers))[0] == 200
    assert _count(store) == 1 and "malformed nonce" in caplog.text


@BACKENDS
async def test_replay_to_another_node_is_refused(two_nodes, caplog):
    (app_a, store_a), (app_b, store_b) = two_nodes
    caplog.set_level(logging.WARNING, logger="converse.webhooks.voice")
    form, headers = _signed(secrets.token_hex(10))
    with trio.fail_after(DEADLINE_S):
        status, body = await _post(app_a, form, headers)
        assert status == 200 and "<Stream" in body, body
        status, _ = await _post(app_b, form, headers)         # identical: nonce and signature
        assert status == 403 and "replayed nonce" in caplog.text
        status, _ = await _post(app_a, form, headers)
        assert status == 403
        # B accepts requests of its own, and A then refuses their replay.
        form2, headers2 = _signed(secrets.token_hex(10), call="call-2")
        assert (await _post(app_b, form2, headers2))[0] == 200
        assert (await _post(app_a, form2, headers2))[0] == 403
    assert _count(store_b) == 2


@BACKENDS
async def test_concurrent_identical_requests_across_nodes_accepted_once(two_nodes):
    """20 copies of one signed request, at once, half to each node: exactly one is answered."""
    (app_a, _), (app_b, store) = two_nodes
    form, headers = _signed(secrets.token_hex(10))
    statuses = []

    async def send(app):
        statuses.append((await _post(app, form, headers))[0])

    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(send, app_a if i % 2 else app_b)
    assert sorted(statuses) == [200] + [403] * 19
    assert _count(store) == 1
