"""Messaging knobs, from ``CONVERSE_MESSAGING_*`` environment variables (defaults suit production;
tests shorten the leases and the poll)."""
from __future__ import annotations

import os

import msgspec


class MessagingSettings(msgspec.Struct, frozen=True, kw_only=True):
    poll_s: float = 2.0              # fallback poll when no webhook woke the workers
    concurrency: int = 16            # conversations processed at once (order within each is kept)
    lease_s: float = 60.0            # a conversation / a send is ours this long (crash: taken over)
    agent_deadline_s: float = 30.0   # one agent turn (connect + reply)
    max_attempts: int = 6            # sends before dead-lettering (429/5xx/timeouts)
    backoff_base_s: float = 1.0      # 1, 2, 4, ... (+ up to 50 % jitter), capped below
    backoff_max_s: float = 300.0
    agent_attempts: int = 3          # agent failures on one inbound message before giving up
    history: int = 20                # earlier messages passed to the agent as context
    batch: int = 200                 # rows looked at per round

    @classmethod
    def from_env(cls, env=os.environ) -> "MessagingSettings":
        changes = {}
        for name in cls.__struct_fields__:
            raw = env.get(f"CONVERSE_MESSAGING_{name.upper()}")
            if raw:
                kind = type(getattr(cls(), name))
                try:
                    changes[name] = kind(raw)
                except ValueError:
                    raise ValueError(f"CONVERSE_MESSAGING_{name.upper()} must be a "
                                     f"{kind.__name__}, got {raw!r}") from None
        return cls(**changes)
