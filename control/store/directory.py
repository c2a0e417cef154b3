"""The media plane's read-only view of configuration (:class:`gateway.directory.Directory`) over
the store.

Lookups are answered from an in-memory snapshot, so a call setup never waits on the database. The
snapshot is reloaded whole when the store's ``config_version`` changed: checked at most every
``refresh_s`` seconds (this is how a change made on another control node reaches this gateway node)
and immediately after a write made through the same :class:`~control.store.Store` object.
"""
from __future__ import annotations

import trio

from control.store import Store, repo
from gateway.directory import AgentInfo, ChannelInfo, FlowInfo

DEFAULT_REFRESH_S = 1.0


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


def _load(tx) -> _Snapshot:
    version = repo.config_version(tx)
    return _Snapshot(
        version,
        {c.id: channel_info(c) for c in repo.list_channels(tx)},
        {a.id: AgentInfo(id=a.id, name=a.name, kind=a.kind, config=dict(a.config))
         for a in repo.list_agents(tx)},
        {f.id: FlowInfo(id=f.id, name=f.name, definition=dict(f.definition))
         for f in repo.list_flows(tx)},
    )


class StoreDirectory:
    """Implements :class:`gateway.directory.Directory`."""

    def __init__(self, store: Store, *, refresh_s: float = DEFAULT_REFRESH_S):
        self.store = store
        self.refresh_s = refresh_s
        self._snap: _Snapshot | None = None
        self._checked_at = float("-inf")
        self._seen_writes = -1
        self._lock = trio.Lock()
        self.reloads = 0              # exported as a metric; tests use it too

    async def _fresh(self) -> _Snapshot:
        now = trio.current_time()
        stale = (self._snap is None or self.store.local_writes != self._seen_writes
                 or now - self._checked_at >= self.refresh_s)
        if not stale:
            return self._snap
        async with self._lock:
            if self._snap is not None and self.store.local_writes == self._seen_writes \
                    and trio.current_time() - self._checked_at < self.refresh_s:
                return self._snap   # another task refreshed while we waited for the lock
            writes = self.store.local_writes
            # No trio deadline here: a worker thread cannot be cancelled, so the database's own
            # limits bound these reads (SQLite busy_timeout, PostgreSQL statement_timeout).
            version = await self.store.read(repo.config_version)
            if self._snap is None or version != self._snap.version:
                self._snap = await self.store.read(_load)
                self.reloads += 1
            self._seen_writes = writes
            self._checked_at = trio.current_time()
            return self._snap

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
