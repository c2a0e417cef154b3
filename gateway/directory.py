"""The small read-only interface the media plane needs from whoever owns configuration.

The gateway never imports ``control``: the ``converse`` command (in control) hands the gateway an
object implementing :class:`Directory`, backed by the store. ``StaticDirectory`` is a dict-backed
implementation for a gateway started from a file or for tests.
"""
from __future__ import annotations

from typing import Protocol

import msgspec


class ChannelInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    type: str                      # voice | whatsapp | sms | web
    provider: str | None = None    # twilio | plivo | exotel | meta | None (web)
    status: str = "setup"          # setup | active | inactive | error
    agent_id: str | None = None
    flow_id: str | None = None
    allowed_origins: tuple[str, ...] = ()
    phone_number: str | None = None
    # Non-secret per-channel media settings (e.g. {"encoding": "mulaw"}) and, for providers that
    # authenticate the stream URL itself (Exotel), a SHA-256 hex digest of the per-channel media key.
    media: dict = {}
    media_key_sha256: str | None = None


class AgentInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    kind: str                      # echo | websocket | http
    config: dict = {}


class FlowInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    definition: dict = {}


class Directory(Protocol):
    async def get_channel(self, channel_id: str) -> ChannelInfo | None: ...

    async def get_agent(self, agent_id: str) -> AgentInfo | None: ...

    async def get_flow(self, flow_id: str) -> FlowInfo | None: ...

    async def web_channels_for(self, target_kind: str, target_id: str) -> list[ChannelInfo]:
        """Web channels whose target is ``target_kind`` ("agent" | "flow") ``target_id``."""
        ...


class StaticDirectory:
    def __init__(self, channels=(), agents=(), flows=()):
        self.channels = {c.id: c for c in channels}
        self.agents = {a.id: a for a in agents}
        self.flows = {f.id: f for f in flows}

    async def get_channel(self, channel_id):
        return self.channels.get(channel_id)

    async def get_agent(self, agent_id):
        return self.agents.get(agent_id)

    async def get_flow(self, flow_id):
        return self.flows.get(flow_id)

    async def web_channels_for(self, target_kind, target_id):
        key = "agent_id" if target_kind == "agent" else "flow_id"
        return [c for c in self.channels.values() if c.type == "web" and getattr(c, key) == target_id]
