"""The media plane's read-only view of configuration (:class:`gateway.directory.Directory`) over
the store.

Lookups are answered from an in-memory snapshot, so a call setup never waits on the database. The
snapshot is reloaded whole when the store's ``config_version`` changed: immediately after a write
made through the same :class:`~control.store.Store` object; on PostgreSQL, while :meth:`StoreDirectory.
listen` runs, as soon as another node's change commits (LISTEN/NOTIFY, :mod:`control.store.notify`),
with a slow poll every ``safety_poll_s`` in case a notification was missed; otherwise (SQLite, or
the listener disconnected) by checking the version at most every ``refresh_s`` seconds.
"""
from __future__ import annotations

import logging

import trio

from control.store import Store, StoreError, agent_secrets, repo
from control.store.notify import ConfigListener
from gateway.directory import AgentInfo, ChannelInfo, FlowInfo

log = logging.getLogger("converse.store.directory")

DEFAULT_REFRESH_S = 1.0
DEFAULT_SAFETY_POLL_S = 30.0


class _Snapshot:
    __slots__ = ("version", "channels", "agents", "flows")

    def __init__(self, version: int, channels, agents, flows):
        self.version = version
        self.channels: dict[str, ChannelInfo] = channels
        self.agents: dict[str, AgentInfo] = agents
        self.flows: dict[str, FlowInfo] = flows


def channel_info(row: repo.ChannelRow) -> ChannelInfo:
    return ChannelInfo(id=row.id, type=row.type, provider=row.provider, status=row.status,
                       agent_id=row.agent_id, flow_id=row.flow_id,
                       allowed_origins=tuple(row.allowed_origins), phone_number=row.phone_number,
                       media=dict(row.media), media_key_sha256=row.media_key_sha256)


def agent_info(row: repo.AgentRow, box) -> AgentInfo:
    """With the headers decrypted: the connectors send them to the agent server."""
    try:
        config = agent_secrets.clear_config(box, row)
    except agent_secrets.DecryptError as exc:
        # One unreadable row must not take every other agent down; the agent server will
        # refuse the header-less connection, and this says why (no value is logged).
        log.error("agent %s: its headers do not decrypt (%s); connecting without them", row.id, exc)
        config = dict(row.config)
    return AgentInfo(id=row.id, name=row.name, kind=row.kind, config=config)


def _load(tx, box) -> _Snapshot:
    version = repo.config_version(tx)
    return _Snapshot(
        version,
        {c.id: channel_info(c) for c in repo.list_channels(tx)},
        {a.id: agent_info(a, box) for a in repo.list_agents(tx)},
        {f.id: FlowInfo(id=f.id, name=f.name, definition=dict(f.definition))
         for f in repo.list_flows(tx)},
    )


class StoreDirectory:
    """Implements :class:`gateway.directory.Directory`."""

    def __init__(self, store: Store, *, refresh_s: float = DEFAULT_REFRESH_S,
                 safety_poll_s: float = DEFAULT_SAFETY_POLL_S):
        self.store = store
        self.refresh_s = refresh_s
        self.safety_poll_s = safety_poll_s
        self._snap: _Snapshot | None = None
        self._checked_at = float("-inf")
        self._seen_writes = -1
        # Notifications received / accounted for by a completed check. A counter, not a "stale"
        # flag: a check already in flight when a notification lands must not mark it seen.
        self._notified = 0
        self._seen_notified = 0
        self._lock = trio.Lock()
        self.reloads = 0              # exported as a metric; tests use it too
        # PostgreSQL only, while listen() runs; its connects/notifications/backend_pid are public.
        self.listener: ConfigListener | None = None
        self._listen_scope: trio.CancelScope | None = None
        self._closed = False

    @property
    def _poll_s(self) -> float:
        # A live LISTEN hears every commit, so polling is only a safety net; without one, poll.
        return self.safety_poll_s if self.listener is not None and self.listener.connected \
            else self.refresh_s

    def _is_fresh(self) -> bool:
        return (self._snap is not None and self.store.local_writes == self._seen_writes
                and self._notified == self._seen_notified
                and trio.current_time() - self._checked_at < self._poll_s)

    async def _fresh(self) -> _Snapshot:
        if self._is_fresh():
            return self._snap
        async with self._lock:
            if self._is_fresh():
                return self._snap   # another task refreshed while we waited for the lock
            writes, notified = self.store.local_writes, self._notified
            # No trio deadline here: a worker thread cannot be cancelled, so the database's own
            # limits bound these reads (SQLite busy_timeout, PostgreSQL statement_timeout).
            version = await self.store.read(repo.config_version)
            if self._snap is None or version != self._snap.version:
                self._snap = await self.store.read(_load, self.store.box)
                self.reloads += 1
            self._seen_writes, self._seen_notified = writes, notified
            self._checked_at = trio.current_time()
            return self._snap

    # ------------------------------------------------------------------------ LISTEN/NOTIFY
    async def listen(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Keep the snapshot current from PostgreSQL notifications until cancelled or
        :meth:`close`; run it in the nursery that serves lookups (``await nursery.start(
        directory.listen)``). On SQLite (one machine: polling is enough) it returns at once."""
        url = getattr(self.store.db, "url", None)
        if self.store.dialect != "postgres" or url is None or self._closed:
            task_status.started()
            return
        self.listener = ConfigListener(url)
        with trio.CancelScope() as self._listen_scope:
            await self.listener.run(self._on_change, task_status=task_status)

    async def _on_change(self, version: int | None) -> None:
        if version is not None and self._snap is not None and version <= self._snap.version:
            return      # already loaded (our own write, or an older batch)
        self._notified += 1                   # stale now, whatever happens below
        try:
            await self._fresh()               # reload here so lookups keep answering from memory
        except StoreError as exc:             # the next lookup retries (and reports it)
            log.warning("config reload after a notification failed: %s", exc)

    def close(self) -> None:
        """Stop :meth:`listen` (it returns within one listener slice, its thread finished and its
        connection closed). Safe to call from any Trio task, more than once."""
        self._closed = True
        if self._listen_scope is not None:
            self._listen_scope.cancel()

    async def get_channel(self, channel_id: str) -> ChannelInfo | None:
        return (await self._fresh()).channels.get(channel_id)

    async def get_agent(self, agent_id: str) -> AgentInfo | None:
        return (await self._fresh()).agents.get(agent_id)

    async def get_flow(self, flow_id: str) -> FlowInfo | None:
        return (await self._fresh()).flows.get(flow_id)

    async def web_channels_for(self, target_kind: str, target_id: str) -> list[ChannelInfo]:
        key = "agent_id" if target_kind == "agent" else "flow_id"
        snap = await self._fresh()
        return [c for c in snap.channels.values() if c.type == "web" and getattr(c, key) == target_id]
