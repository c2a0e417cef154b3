"""Two database backends behind one tiny synchronous interface.

Repositories are written once, as plain functions over a :class:`Tx`; the async :class:`~control.
store.Store` runs them in a worker thread (``trio.to_thread``: sqlite3 and psycopg are blocking, and
psycopg's async mode is asyncio-only). SQL is written with ``?`` placeholders and portable types;
the PostgreSQL backend rewrites ``?`` to ``%s``.

Concurrency: every ``transaction()`` is one database transaction. SQLite write transactions start
with ``BEGIN IMMEDIATE`` so two writers serialize at the start instead of failing at commit;
PostgreSQL uses READ COMMITTED plus ``SELECT ... FOR UPDATE`` where a repository needs a row lock.
"""
from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
from typing import Any, Iterator

from control.config import sqlite_path

BUSY_TIMEOUT_MS = 5000         # how long a SQLite writer waits for another before giving up
PG_CONNECT_TIMEOUT_S = 5
PG_STATEMENT_TIMEOUT_MS = 10000


class StoreError(Exception):
    """The database refused or could not be reached."""


class Tx:
    """One open transaction. ``execute`` returns rows as dicts."""

    dialect: str

    def execute(self, sql: str, params: tuple | list = ()) -> list[dict[str, Any]]:
        raise NotImplementedError

    def one(self, sql: str, params: tuple | list = ()) -> dict[str, Any] | None:
        rows = self.execute(sql, params)
        return rows[0] if rows else None

    def rowcount(self, sql: str, params: tuple | list = ()) -> int:
        raise NotImplementedError

    def lock_row(self, table: str, row_id: str) -> dict[str, Any] | None:
        """Read a row, locking it against concurrent writers until the transaction ends."""
        raise NotImplementedError


class Database:
    dialect: str

    def transaction(self, *, write: bool = True) -> contextlib.AbstractContextManager[Tx]:
        raise NotImplementedError

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------------------- SQLite
class _SqliteTx(Tx):
    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn

    def execute(self, sql, params=()):
        cur = self._conn.execute(sql, tuple(params))
        if cur.description is None:
            return []
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, row)) for row in cur.fetchall()]

    def rowcount(self, sql, params=()):
        return self._conn.execute(sql, tuple(params)).rowcount

    def lock_row(self, table, row_id):
        # BEGIN IMMEDIATE already holds the database write lock for the whole transaction.
        return self.one(f"SELECT * FROM {table} WHERE id = ?", (row_id,))


def _rollback(conn: sqlite3.Connection) -> None:
    # SQLite may already have rolled back on its own (e.g. SQLITE_FULL); a second ROLLBACK
    # would raise and hide the original error.
    if conn.in_transaction:
        conn.execute("ROLLBACK")


class SqliteDatabase(Database):
    """One connection per worker thread; WAL so readers never block the writer."""

    dialect = "sqlite"

    def __init__(self, path: str):
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000,
                                       isolation_level=None, check_same_thread=False)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open SQLite database {self.path}: {exc}") from None
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Tx]:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except sqlite3.Error as exc:
            raise StoreError(f"database busy or unavailable: {exc}") from None
        try:
            yield _SqliteTx(conn)
        except sqlite3.OperationalError as exc:     # locked past busy_timeout, disk I/O, ...
            _rollback(conn)
            raise StoreError(f"SQLite error: {exc}") from None
        except BaseException:
            _rollback(conn)
            raise
        else:
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(conn)
                raise StoreError(f"commit failed: {exc}") from None

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._all.clear()


# ------------------------------------------------------------------------------------ PostgreSQL
_QMARK = re.compile(r"\?")


class _PgTx(Tx):
    dialect = "postgres"

    def __init__(self, conn):
        self._conn = conn

    def execute(self, sql, params=()):
        cur = self._conn.execute(_QMARK.sub("%s", sql), tuple(params))
        if cur.description is None:
            return []
        return list(cur.fetchall())

    def rowcount(self, sql, params=()):
        return self._conn.execute(_QMARK.sub("%s", sql), tuple(params)).rowcount

    def lock_row(self, table, row_id):
        return self.one(f"SELECT * FROM {table} WHERE id = ? FOR UPDATE", (row_id,))


class PostgresDatabase(Database):
    dialect = "postgres"

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 8):
        import psycopg
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool, PoolTimeout

        self.url = url     # control.store.notify opens its own LISTEN connection with it
        self._unavailable = (psycopg.OperationalError, PoolTimeout)
        self.pool = ConnectionPool(
            url, min_size=min_size, max_size=max_size, open=False, timeout=PG_CONNECT_TIMEOUT_S,
            kwargs={"row_factory": dict_row, "connect_timeout": PG_CONNECT_TIMEOUT_S,
                    "options": f"-c statement_timeout={PG_STATEMENT_TIMEOUT_MS}"})
        try:
            self.pool.open(wait=True, timeout=PG_CONNECT_TIMEOUT_S)
        except Exception as exc:   # PoolTimeout, OperationalError: both mean "cannot reach it"
            self.pool.close()
            raise StoreError(f"cannot connect to PostgreSQL: {exc}") from None

    @contextlib.contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Tx]:
        try:
            with self.pool.connection() as conn, conn.transaction():
                yield _PgTx(conn)
        except self._unavailable as exc:       # server gone, statement timeout, pool exhausted
            raise StoreError(f"PostgreSQL error: {exc}") from None

    def close(self) -> None:
        self.pool.close()


def open_database(url: str) -> Database:
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(url)
    path = sqlite_path(url)
    if path is None:
        raise StoreError(f"unsupported DATABASE_URL {url.split(':', 1)[0]}:… "
                         "(use sqlite:///path or postgresql://…)")
    if str(path) != ":memory:":
        path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteDatabase(str(path))
