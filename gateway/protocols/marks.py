"""Which marks the caller really heard: a small pure tracker shared by the provider codecs.

The providers disagree on what happens to pending playback markers when audio is cleared
(protocols.md §1.4, §3.4, §4.2):

* Twilio echoes every pending ``mark`` immediately on ``clear`` — indistinguishable on the wire
  from "played".
* Plivo never acks pending ``checkpoint``s after ``clearAudio``.
* Exotel does not document it.

The tracker makes them all look the same to the agent: each mark sent is reported exactly once,
``MarkPlayed(name)`` when the provider says it played, or ``MarkPlayed(name, cleared=True)`` at
the moment we send a clear while it is still pending. The echoes Twilio sends for those cleared
marks are swallowed (they arrive in order, before the echo of any later mark of the same name).
Echoes of names we never sent are ignored.
"""
from __future__ import annotations

from collections import deque

from .events import LocalProtocolError, MarkPlayed

MAX_PENDING_MARKS = 1024


class MarkTracker:
    def __init__(self, *, echoes_on_clear: bool, max_pending: int = MAX_PENDING_MARKS) -> None:
        self._echoes_on_clear = echoes_on_clear
        self._max_pending = max_pending
        self._pending: deque[str] = deque()
        # Cleared marks whose echo the provider still owes us (Twilio only); bounded so a
        # provider that does not echo cannot grow it.
        self._owed_echoes: deque[str] = deque(maxlen=max_pending)

    @property
    def pending(self) -> tuple[str, ...]:
        return tuple(self._pending)

    def sent(self, name: str) -> None:
        """Record a mark just rendered towards the provider."""
        if len(self._pending) >= self._max_pending:
            raise LocalProtocolError(f"more than {self._max_pending} marks pending")
        self._pending.append(name)

    def echoed(self, name: str) -> MarkPlayed | None:
        """The provider reports ``name`` reached; returns the event for the agent, if any."""
        if name in self._owed_echoes:
            self._owed_echoes.remove(name)
            return None
        try:
            self._pending.remove(name)
        except ValueError:
            return None
        return MarkPlayed(name)

    def cleared(self) -> list[MarkPlayed]:
        """We are sending a clear: every pending mark is dropped, reported ``cleared=True``."""
        dropped = [MarkPlayed(name, cleared=True) for name in self._pending]
        if self._echoes_on_clear:
            self._owed_echoes.extend(self._pending)
        self._pending.clear()
        return dropped
