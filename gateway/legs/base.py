"""The interface between a session and its caller leg."""
from __future__ import annotations

from typing import Protocol

from gateway.protocols.canonical import Event


class CallerLeg(Protocol):
    """One caller connection. The session owns it: exactly one task calls ``receive``; sends may
    come from several tasks (the transport orders them).

    - ``receive()`` returns the next PCM16LE 16 kHz frame (``bytes``) or canonical event from the
      caller. Malformed input is the leg's business (answer with an ``error`` event, count it in
      ``stats.bad_messages``, carry on); it raises ``ConnectionClosed`` when the caller is gone.
      A provider's "played" acknowledgement comes up as ``Mark(name)``.
    - ``send_audio(pcm24)`` sends one paced frame of PCM16LE 24 kHz (the session paces).
    - ``send_event(event)`` sends a canonical event (transcript, error, end...).
    - ``clear()`` barge-in: tell the caller side to drop what it buffered.
    - ``mark(name) -> bool``: everything before the mark has been handed to the caller. Return True
      when that means "heard" for this channel (the widget); False when the leg will report it
      later through ``receive()`` (a phone provider echoes marks when played).
    - ``close(code, reason)`` ends the connection; ``keepalive()`` runs pings until cancelled.
    """

    kind: str                # "web" | "twilio" | ...
    down_frame_bytes: int    # bytes of one 20 ms frame towards the caller (24 kHz PCM16: 960)

    async def receive(self) -> bytes | Event: ...

    async def send_audio(self, pcm24: bytes) -> None: ...

    async def send_event(self, event: Event) -> None: ...

    async def clear(self) -> None: ...

    async def mark(self, name: str) -> bool: ...

    async def close(self, code: int, reason: str) -> None: ...

    async def keepalive(self) -> None: ...
