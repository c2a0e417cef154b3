"""Agent connectors: the agent's side of a session.

A connector is an object with ``async run(start, inbox, outbox)``: it reads the caller's PCM16 16 kHz
frames (``bytes``) and canonical events from ``inbox`` (an async iterator that ends when the caller
is gone) and sends PCM16 24 kHz audio (``bytes``) and events to ``outbox`` (a bounded Trio memory
channel). Returning ends the agent's part of the conversation. ``make_agent`` picks the connector
for an ``AgentInfo.kind``; a new kind is a new module plus one line in ``CONNECTORS``.
"""
from __future__ import annotations

from gateway.agents.echo import EchoAgent
from gateway.agents.http import HttpAgent
from gateway.agents.websocket import WebSocketAgent
from gateway.directory import AgentInfo
from gateway.limits import Limits

CONNECTORS = {"echo": EchoAgent, "websocket": WebSocketAgent, "http": HttpAgent}


class UnknownAgentKind(ValueError):
    pass


def make_agent(info: AgentInfo, limits: Limits):
    try:
        cls = CONNECTORS[info.kind]
    except KeyError:
        raise UnknownAgentKind(f"unknown agent kind {info.kind!r}") from None
    return cls(info.config or {}, limits)


__all__ = ["CONNECTORS", "EchoAgent", "HttpAgent", "WebSocketAgent", "make_agent",
           "UnknownAgentKind"]
