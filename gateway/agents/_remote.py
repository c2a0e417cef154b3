"""What the agents reached over the network (HTTP, WebSocket) share: their configuration."""
from __future__ import annotations

from gateway.limits import Limits


class RemoteAgent:
    """An agent at ``config["url"]``, sent ``config["headers"]``. Header names and values are
    made strings and a non-object is ignored: a stored row must never crash a session."""

    def __init__(self, config: dict, limits: Limits):
        self.url = config.get("url")
        headers = config.get("headers") or {}
        self.headers = {str(k): str(v) for k, v in headers.items()} if isinstance(headers, dict) else {}
        self.limits = limits
