"""Provider stream events the agent hears about, as canonical protocol events.

Only two kinds cross over unchanged: keypad digits and playback marks (with ``cleared``). Start,
stop, close and protocol errors are session decisions (``start``/``end``/``error`` with the
session's own ids and reasons), so they map to None here.
"""
from __future__ import annotations

from . import canonical
from .events import DtmfReceived, Event, MarkPlayed


def to_canonical(event: Event) -> canonical.Event | None:
    cls = type(event)
    if cls is MarkPlayed:
        return canonical.Mark(name=event.name, cleared=event.cleared)
    if cls is DtmfReceived:
        return canonical.Dtmf(digit=event.digit)   # codecs only emit 0-9 * # A-D
    return None
