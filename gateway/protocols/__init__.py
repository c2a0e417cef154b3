"""Sans-IO protocol codecs: no sockets, no clocks, no credentials, no resampling.

* :mod:`.canonical` — the widget/agent protocol (``canonical.decode``/``canonical.encode``).
* :class:`TwilioConnection`, :class:`PlivoConnection`, :class:`ExotelConnection` — provider media
  streams: ``conn.receive(message | None) -> list[event]``, ``conn.send(outbound) -> str``,
  ``conn.clear() -> (wire, marks dropped)``; state machine in :mod:`._state`.
* :class:`MarkTracker`, :class:`ExotelChunker`, :func:`to_canonical` — pure helpers the phone
  session uses.

Choose the codec by the authenticated route (``/media/{provider}/...``), never by sniffing.
"""
from . import canonical
from ._base import MediaStreamConnection
from ._state import State
from .events import (
    MAX_MESSAGE_BYTES, AudioCleared, DtmfReceived, Event, LocalProtocolError, MarkPlayed,
    MediaFormat, MediaReceived, Outbound, ProtocolErrorEvent, SendClear, SendMark, SendMedia,
    StreamClosed, StreamConnected, StreamStarted, StreamStopped,
)
from .exotel import ExotelChunker, ExotelConnection, exotel_chunk_ok
from .mapping import to_canonical
from .marks import MarkTracker
from .plivo import PlivoConnection
from .twilio import TwilioConnection

CODECS: dict[str, type[MediaStreamConnection]] = {
    "twilio": TwilioConnection,
    "plivo": PlivoConnection,
    "exotel": ExotelConnection,
}

__all__ = [
    "CODECS", "MAX_MESSAGE_BYTES", "AudioCleared", "DtmfReceived", "Event", "ExotelChunker",
    "ExotelConnection", "LocalProtocolError", "MarkPlayed", "MarkTracker", "MediaFormat",
    "MediaReceived", "MediaStreamConnection", "Outbound", "PlivoConnection", "ProtocolErrorEvent",
    "SendClear", "SendMark", "SendMedia", "State", "StreamClosed", "StreamConnected",
    "StreamStarted", "StreamStopped", "TwilioConnection", "canonical", "exotel_chunk_ok",
    "to_canonical",
]
