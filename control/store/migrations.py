"""Versioned schema migrations: a numbered list, applied in order, each in its own transaction.

To add tables (inbox, outbox, conversations, ...), append a ``Migration`` with the next number;
never edit one that has shipped. Statements are portable SQL (TEXT, INTEGER, BIGINT); when a
dialect needs different text, give a ``{"sqlite": [...], "postgres": [...]}`` dict instead of a list.
Timestamps are ISO 8601 UTC text; JSON is stored as text.
"""
from __future__ import annotations

import datetime

import msgspec

from control.store.db import Database, Tx


class Migration(msgspec.Struct, frozen=True):
    version: int
    name: str
    statements: list[str] | dict[str, list[str]]

    def for_dialect(self, dialect: str) -> list[str]:
        if isinstance(self.statements, dict):
            return self.statements[dialect]
        return self.statements


def _messaging_tables(seq_type: str) -> list[str]:
    """Migration 2. ``seq`` orders messages (arrival order per conversation); the provider-id
    unique index is what deduplicates redelivered webhooks (wamid, MessageSid)."""
    return [
        """CREATE TABLE conversations (
            id TEXT PRIMARY KEY,
            channel_id TEXT NOT NULL,
            remote TEXT NOT NULL,
            target_state TEXT NOT NULL DEFAULT '{}',
            lease_owner TEXT,
            lease_until_ms BIGINT NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (channel_id, remote))""",
        f"""CREATE TABLE messages (
            seq {seq_type},
            id TEXT NOT NULL UNIQUE,
            channel_id TEXT NOT NULL,
            conversation_id TEXT NOT NULL,
            direction TEXT NOT NULL,
            kind TEXT NOT NULL DEFAULT 'text',
            text TEXT,
            status TEXT NOT NULL,
            provider_id TEXT,
            idempotency_key TEXT UNIQUE,
            reply_to TEXT,
            delivery TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_ms BIGINT NOT NULL DEFAULT 0,
            lease_until_ms BIGINT NOT NULL DEFAULT 0,
            last_error TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL)""",
        "CREATE UNIQUE INDEX messages_provider_id ON messages(channel_id, direction, provider_id)",
        "CREATE INDEX messages_work ON messages(direction, status, conversation_id, seq)",
        "CREATE INDEX messages_channel ON messages(channel_id, seq)",
    ]


MIGRATIONS: list[Migration] = [
    Migration(1, "channels, agents, flows, api keys", [
        """CREATE TABLE agents (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            kind TEXT NOT NULL,
            config TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL)""",
        """CREATE TABLE flows (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            definition TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL)""",
        """CREATE TABLE channels (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            type TEXT NOT NULL,
            provider TEXT,
            credentials TEXT,
            credential_fields TEXT NOT NULL DEFAULT '[]',
            phone_number TEXT,
            phone_number_id TEXT,
            agent_id TEXT REFERENCES agents(id),
            flow_id TEXT REFERENCES flows(id),
            allowed_origins TEXT NOT NULL DEFAULT '[]',
            status TEXT NOT NULL,
            status_detail TEXT NOT NULL DEFAULT '',
            webhook_verified_at TEXT,
            media TEXT NOT NULL DEFAULT '{}',
            media_key_sha256 TEXT,
            version INTEGER NOT NULL DEFAULT 1,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL)""",
        "CREATE INDEX channels_agent_id ON channels(agent_id)",
        "CREATE INDEX channels_flow_id ON channels(flow_id)",
        """CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            prefix TEXT NOT NULL,
            key_sha256 TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL,
            revoked_at TEXT)""",
        # One row, bumped by every configuration change: gateway nodes poll it to know when to
        # reload their directory (cheap, and works the same on SQLite and PostgreSQL).
        "CREATE TABLE config_version (id INTEGER PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL)",
        "INSERT INTO config_version (id, version) VALUES (1, 0)",
    ]),
    Migration(2, "messaging: conversations, inbox and outbox (control.messaging.repo)", {
        "sqlite": _messaging_tables("INTEGER PRIMARY KEY AUTOINCREMENT"),
        "postgres": _messaging_tables("BIGSERIAL PRIMARY KEY")}),
    # Agents' headers move out of ``config`` into this ciphertext. Encrypting the rows already
    # there needs the secret key, which SQL does not have: open_store (and `converse migrate`)
    # then run control.store.agent_secrets.seal_clear_rows.
    Migration(3, "agents.secret_config: encrypted agent headers", [
        "ALTER TABLE agents ADD COLUMN secret_config TEXT"]),
    # Webhook nonces seen recently (Plivo's X-Plivo-Signature-V3-Nonce), shared by every control
    # node so a replay sent to another node is refused too (control.store.nonces). Rows older than
    # the window are pruned as new ones arrive, oldest first: hence the index on the time.
    Migration(4, "webhook_nonces: the replay window shared by every node", [
        """CREATE TABLE webhook_nonces (
            provider TEXT NOT NULL,
            nonce TEXT NOT NULL,
            seen_at_ms BIGINT NOT NULL,
            PRIMARY KEY (provider, nonce))""",
        "CREATE INDEX webhook_nonces_seen_at ON webhook_nonces(seen_at_ms)",
    ]),
]

_CREATE_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"""


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _serialize(tx: Tx) -> None:
    """Two nodes migrating at once must not both apply a step."""
    if tx.dialect == "postgres":
        tx.execute("SELECT pg_advisory_xact_lock(7216001)")
    # SQLite: BEGIN IMMEDIATE already serializes writers.


def current_version(db: Database) -> int:
    with db.transaction() as tx:
        tx.execute(_CREATE_TABLE)
        row = tx.one("SELECT MAX(version) AS v FROM schema_migrations")
    return int(row["v"] or 0) if row else 0


def migrate(db: Database, migrations: list[Migration] = MIGRATIONS) -> list[int]:
    """Apply every pending migration; return the versions applied (empty when up to date)."""
    applied = []
    current_version(db)   # creates the bookkeeping table
    for m in sorted(migrations, key=lambda m: m.version):
        with db.transaction() as tx:
            _serialize(tx)
            if tx.one("SELECT version FROM schema_migrations WHERE version = ?", (m.version,)):
                continue
            for stmt in m.for_dialect(tx.dialect):
                tx.execute(stmt)
            tx.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                       (m.version, m.name, _now()))
            applied.append(m.version)
    return applied


def pending(db: Database, migrations: list[Migration] = MIGRATIONS) -> list[int]:
    have = current_version(db)
    return [m.version for m in migrations if m.version > have]
