"""Which marks the caller really heard: a small pure tracker shared by the provider codecs.

The providers disagree on what happens to pending playback markers when audio is cleared
(protocols.md §1.4, §3.4, §4.2):

* Twilio echoes every pending ``mark`` immediately on ``clear`` — indistinguishable on the wire
  from "played".
* Plivo never acks pending ``checkpoint``s after ``clearAudio``, and answers ``clearedAudio``.
* Exotel does not document it.

The tracker makes them look the same to the agent: each mark sent is reported exactly once,
``MarkPlayed(name)`` when the provider says it played, or ``MarkPlayed(name, cleared=True)`` the
moment we send a clear while it is still pending. Echoes the provider still sends for those
cleared marks are swallowed by name, in order:

* ``clear_echoes`` (Twilio): every cleared mark is echoed exactly once (by the clear, or by its
  playback already in flight), and before the echo of any mark sent after the clear, so counting
  owed echoes per name is exact even when the agent reuses names.
* ``clear_acks`` (Plivo): a playback echo already in flight when we cleared can still arrive, but
  only before the provider's clear acknowledgement; the ack ends that window.
* neither (Exotel): nothing is owed; a stray echo naming no pending mark is ignored. (If the agent
  reuses a name, a stray echo racing a clear could ack the newer mark early: use unique names.)

Echoes of names we never sent are ignored.
"""
from __future__ import annotations

from collections import deque

from .events import LocalProtocolError, MarkPlayed

MAX_PENDING_MARKS = 1024
MAX_OWED_CLEARS = 64


class MarkTracker:
    def __init__(
        self,
        *,
        clear_echoes: bool,
        clear_acks: bool = False,
        max_pending: int = MAX_PENDING_MARKS,
    ) -> None:
        self._clear_echoes = clear_echoes
        self._clear_acks = clear_acks
        self._max_pending = max_pending
        self._pending: deque[str] = deque()
        # Per clear not yet settled: names whose echo may still arrive. Bounded, so a provider
        # that never echoes or acks cannot grow it.
        self._owed: deque[list[str]] = deque(maxlen=MAX_OWED_CLEARS)

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
        for names in self._owed:
            if name in names:
                names.remove(name)
                if not names and self._clear_echoes:
                    self._owed.remove(names)
                return None
        try:
            self._pending.remove(name)
        except ValueError:
            return None
        return MarkPlayed(name)

    def cleared(self) -> list[MarkPlayed]:
        """We are sending a clear: every pending mark is dropped, reported ``cleared=True``."""
        dropped = [MarkPlayed(name, cleared=True) for name in self._pending]
        if (self._clear_echoes and self._pending) or self._clear_acks:
            self._owed.append(list(self._pending))
        self._pending.clear()
        return dropped

    def clear_acknowledged(self) -> None:
        """The provider confirmed the oldest outstanding clear: no more echoes owed for it."""
        if self._clear_acks and self._owed:
            self._owed.popleft()
