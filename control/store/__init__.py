"""Persistence for the control plane: SQLite by default, PostgreSQL for several nodes.

``open_store(settings)`` gives a :class:`Store`. Repositories (:mod:`control.store.repo`) are sync
functions over a transaction; ``await store.run(fn, *args)`` runs one of them (or any function
taking a :class:`~control.store.db.Tx`) in a worker thread inside one transaction. The media plane
never sees this: it reads through :class:`control.store.directory.StoreDirectory`.
"""
from __future__ import annotations

import functools
import hashlib
import secrets as _random
from typing import Callable, TypeVar

import trio

from control.secrets import SecretBox
from control.store import repo
from control.store import agent_secrets
from control.store.agent_secrets import agent_aad
from control.store.db import Database, StoreError, Tx, open_database
from control.store.migrations import MIGRATIONS, Migration, migrate, pending

__all__ = ["Store", "StoreError", "Tx", "open_store", "repo", "migrate", "pending", "MIGRATIONS",
           "Migration", "create_api_key", "hash_api_key", "rotate_secrets", "agent_secrets", "agent_aad",
           "channel_aad"]

T = TypeVar("T")

# Bounds the worker threads the store may occupy (SQLite: one connection per thread).
DB_THREADS = 8
API_KEY_PREFIX = "cvk_"


class Store:
    def __init__(self, db: Database, box: SecretBox):
        self.db = db
        self.box = box
        self.limiter = trio.CapacityLimiter(DB_THREADS)
        # Bumped after every write this process makes, so an in-process directory reloads at once
        # instead of waiting for its next poll of config_version.
        self.local_writes = 0

    @property
    def dialect(self) -> str:
        return self.db.dialect

    def run_sync(self, fn: Callable[..., T], *args, write: bool = True) -> T:
        with self.db.transaction(write=write) as tx:
            return fn(tx, *args)

    async def run(self, fn: Callable[..., T], *args, write: bool = True) -> T:
        """Run ``fn(tx, *args)`` in one transaction on a worker thread. Not abandoned on
        cancellation: a transaction either commits or rolls back, never half-runs."""
        result = await trio.to_thread.run_sync(functools.partial(self.run_sync, fn, *args, write=write),
                                               limiter=self.limiter)
        if write:
            self.local_writes += 1
        return result

    async def read(self, fn: Callable[..., T], *args) -> T:
        return await self.run(fn, *args, write=False)

    def close(self) -> None:
        self.db.close()


def open_store(settings, *, auto_migrate: bool = True) -> Store:
    db = open_database(settings.database_url)
    box = SecretBox(settings.secret_key, settings.previous_keys)
    if auto_migrate:
        migrate(db)
        agent_secrets.seal_clear_rows(db, box)    # the Python half of migration 3
    return Store(db, box)


# ----------------------------------------------------------------------------------- API keys
def hash_api_key(key: str) -> str:
    # Keys are 256-bit random: a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def create_api_key(tx: Tx, name: str) -> tuple[repo.ApiKeyRow, str]:
    """Create a key; return its row and the plaintext, which is shown once and never stored."""
    key = API_KEY_PREFIX + _random.token_urlsafe(32)
    row = repo.ApiKeyRow(id="key_" + _random.token_hex(6), name=name, prefix=key[:10],
                         key_sha256=hash_api_key(key), created_at=repo.now_iso())
    repo.insert_api_key(tx, row)
    return row, key


# ------------------------------------------------------------------------------- key rotation
def rotate_secrets(db: Database, old: SecretBox, new: SecretBox) -> int:
    """Re-encrypt every stored secret under ``new`` in ONE transaction (all or nothing); return the
    number of rows. Rows already under the new key (an earlier interrupted run) are left alone."""
    with db.transaction() as tx:
        rows = repo.all_channel_credentials(tx)
        done = 0
        for channel_id, ct in rows:
            if new.is_current(ct):
                continue
            aad = channel_aad(channel_id)
            repo.set_channel_credentials(tx, channel_id, new.encrypt(old.decrypt(ct, aad), aad))
            done += 1
        done += agent_secrets.rotate(tx, old, new)
    return done


def channel_aad(channel_id: str) -> bytes:
    return f"channel:{channel_id}".encode()
