"""Configuration changes pushed by PostgreSQL: ``LISTEN converse_config``.

Every transaction that bumps ``config_version`` also runs ``pg_notify('converse_config',
'<new version>')`` (:func:`control.store.repo.bump_config_version`); PostgreSQL delivers it to every
listening session when, and only if, that transaction commits. :class:`ConfigListener` keeps one
dedicated autocommit connection (not from the pool: a pooled connection would be handed to other
work and lose its LISTEN) and reports each change, so a gateway node reloads within moments of a
commit on any node instead of at its next poll.

psycopg's waits are blocking, so the connection is only ever touched from a worker thread, one call
at a time, each call bounded: connecting by ``connect_timeout``, waiting for notifications by a short
slice (``slice_s``). Cancellation therefore takes effect within one slice, and no thread is left
running once :meth:`ConfigListener.run` returns. A dropped connection is reopened with capped
exponential backoff; after every (re)connect the caller is told to check, because notifications
sent while nobody listened are lost.
"""
from __future__ import annotations

import logging
import threading
from typing import Awaitable, Callable

import trio

log = logging.getLogger("converse.store.notify")

CONFIG_CHANNEL = "converse_config"
CONNECT_TIMEOUT_S = 5          # bounds one connection attempt (libpq connect_timeout)
SLICE_S = 0.5                  # one blocking wait for notifications; the cancellation latency
BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 5.0
# libpq TCP keepalives: a peer that vanished without a FIN is noticed in ~25 s, not never.
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
               "keepalives_count": 3}

# ``on_change(version)``: ``version`` is the highest version announced in one batch, or None when
# the caller must check for itself (just (re)connected, or a payload that is not a version).
OnChange = Callable[[int | None], Awaitable[None]]


def parse_version(payload: str) -> int | None:
    try:
        return int(payload)
    except ValueError:
        return None


class ConfigListener:
    """One LISTEN connection to PostgreSQL at ``conninfo``, run by :meth:`run` until cancelled."""

    def __init__(self, conninfo: str, *, channel: str = CONFIG_CHANNEL,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S, slice_s: float = SLICE_S,
                 backoff_min_s: float = BACKOFF_MIN_S, backoff_max_s: float = BACKOFF_MAX_S):
        self.conninfo = conninfo
        self.channel = channel
        self.connect_timeout_s = connect_timeout_s
        self.slice_s = slice_s
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self._conn = None
        # Observable state (metrics, tests).
        self.backend_pid: int | None = None   # the server process of the live LISTEN session
        self.connects = 0                     # successful LISTENs, the first one included
        self.failures = 0                     # failed attempts and dropped connections
        self.notifications = 0                # notifications received
        self._busy = 0                        # worker threads inside a blocking call right now
        self._busy_lock = threading.Lock()

    @property
    def connected(self) -> bool:
        return self._conn is not None

    @property
    def busy_threads(self) -> int:
        with self._busy_lock:
            return self._busy

    # ---------------------------------------------------------------- blocking (worker thread)
    def _in_thread(self, fn, *args):
        with self._busy_lock:
            self._busy += 1
        try:
            return fn(*args)
        finally:
            with self._busy_lock:
                self._busy -= 1

    def _connect(self):
        import psycopg
        conn = psycopg.connect(self.conninfo, autocommit=True,
                               connect_timeout=max(1, int(self.connect_timeout_s)),
                               application_name="converse-config-listener", **_KEEPALIVES)
        try:
            conn.execute(f'LISTEN "{self.channel}"')
        except BaseException:
            conn.close()
            raise
        return conn

    def _wait(self, conn) -> list[str]:
        """Payloads that arrived within one slice (returns at the first batch)."""
        return [n.payload for n in conn.notifies(timeout=self.slice_s, stop_after=1)]

    # ---------------------------------------------------------------------------------- Trio
    async def run(self, on_change: OnChange, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Listen until cancelled. ``task_status.started()`` comes after the first attempt, whether
        it connected or not (a database that is down must not hold up the caller's startup)."""
        import psycopg
        backoff = self.backoff_min_s
        started = False
        try:
            while True:
                try:
                    # Not abandoned on cancellation: the attempt ends within connect_timeout and
                    # its connection is either ours to close or never opened.
                    self._conn = await trio.to_thread.run_sync(self._in_thread, self._connect)
                except (psycopg.Error, OSError) as exc:
                    self.failures += 1
                    log.warning("config listener: cannot LISTEN (%s); retrying in %.1f s",
                                _brief(exc), backoff)
                else:
                    self.connects += 1
                    self.backend_pid = self._conn.info.backend_pid
                    backoff = self.backoff_min_s
                    if not started:
                        task_status.started()
                        started = True
                    await on_change(None)   # anything committed while we were not listening
                    await self._pump(on_change)   # returns when the connection drops
                    self.failures += 1
                if not started:
                    task_status.started()
                    started = True
                await trio.sleep(backoff)
                backoff = min(backoff * 2, self.backoff_max_s)
        finally:
            self._close()

    async def _pump(self, on_change: OnChange) -> None:
        import psycopg
        conn = self._conn
        while True:
            try:
                payloads = await trio.to_thread.run_sync(self._in_thread, self._wait, conn)
            except (psycopg.Error, OSError) as exc:
                log.warning("config listener: connection lost (%s); reconnecting", _brief(exc))
                self._close()
                return
            if not payloads:
                continue
            self.notifications += len(payloads)
            versions = [parse_version(p) for p in payloads]
            await on_change(None if None in versions else max(versions))

    def _close(self) -> None:
        conn, self._conn, self.backend_pid = self._conn, None, None
        if conn is not None:
            try:
                conn.close()     # no worker thread uses it: every call on it has returned
            except Exception:    # closing a broken connection: nothing left to release
                pass


def _brief(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
