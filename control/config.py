"""Settings from the environment (and nothing else), read once at startup."""
from __future__ import annotations

import os

import msgspec


class ProviderEndpoints(msgspec.Struct, frozen=True):
    twilio: str = "https://api.twilio.com"
    plivo: str = "https://api.plivo.com"
    exotel: str = "https://api.exotel.com"     # Exotel's per-region "subdomain" host
    meta: str = "https://graph.facebook.com/v21.0"

    @classmethod
    def from_env(cls, env=os.environ) -> "ProviderEndpoints":
        d = cls()
        return cls(
            twilio=env.get("TWILIO_API_BASE", d.twilio).rstrip("/"),
            plivo=env.get("PLIVO_API_BASE", d.plivo).rstrip("/"),
            exotel=env.get("EXOTEL_API_BASE", d.exotel).rstrip("/"),
            meta=env.get("META_GRAPH_BASE", d.meta).rstrip("/"),
        )
