"""Typed events shared by the provider media-stream codecs, and their errors.

Inbound events (what ``conn.receive()`` returns) and outbound events (what ``conn.send()``
renders) are frozen msgspec Structs: cheap to build on the per-frame path, immutable, comparable.

Error scheme (the same for every provider codec):

* Peer garbage never raises. ``receive()`` returns a :class:`ProtocolErrorEvent` instead.
  ``fatal=True`` (everything except an unknown event name) puts the connection into the one-way
  ERROR state; the caller closes the WebSocket with ``event.code`` and ``event.reason``:

  ======  ==============================================================================
  1009    message over :data:`MAX_MESSAGE_BYTES` (64 KiB)
  1007    invalid UTF-8, malformed JSON, a field missing or of the wrong type, a bad value
  1003    JSON that is not an event object (array, number, no string ``event``);
          also the code of the *non-fatal* event reporting an unknown event name
  1002    a known message out of state (media before start, anything after stop)
  1008    a second ``start`` on a live stream, or a message for another stream id
  ======  ==============================================================================

  ``fatal=False`` is only used for well-formed messages with an event name the codec does not
  know or act on: providers add events without notice, and dropping live calls for that would be
  worse than logging it.
* :class:`LocalProtocolError` is raised for *our* mistakes: sending before ``start`` or after
  ``stop``, a malformed outbound event. It is a bug in the caller, never caused by the peer.
* Reasons never contain a payload, only field paths and short, truncated names; the ``repr`` of
  events carrying audio or the stream token (custom parameters) leaves those values out.
"""
from __future__ import annotations

from typing import Literal

import msgspec

MAX_MESSAGE_BYTES = 64 * 1024
MAX_REASON_BYTES = 120   # a WebSocket close reason must fit in 123 bytes


def too_large(message: str | bytes) -> bool:
    """Over MAX_MESSAGE_BYTES (in UTF-8 for text): the one size check of every codec."""
    size = len(message)
    if size > MAX_MESSAGE_BYTES:
        return True
    if type(message) is str and size * 4 > MAX_MESSAGE_BYTES:
        # Characters are up to 4 bytes: count them only when it could matter.
        return len(message.encode("utf-8", "surrogatepass")) > MAX_MESSAGE_BYTES
    return False

Encoding = Literal["mulaw", "alaw", "l16"]
DTMF_DIGITS = frozenset("0123456789*#ABCD")


class LocalProtocolError(Exception):
    """The caller asked the codec to do something the protocol forbids (a bug on our side)."""


class MediaFormat(msgspec.Struct, frozen=True):
    encoding: Encoding
    sample_rate: int
    channels: int = 1


# -- inbound -------------------------------------------------------------------------------

class StreamConnected(msgspec.Struct, frozen=True):
    """The provider's greeting (Twilio/Exotel ``connected``). Plivo has none."""

    protocol: str = ""
    version: str = ""


class StreamStarted(msgspec.Struct, frozen=True, kw_only=True):
    stream_id: str
    call_id: str
    account_id: str
    media_format: MediaFormat
    # Per-call data: Twilio <Parameter>s, Plivo extraHeaders, Exotel URL query parameters.
    custom_parameters: dict[str, str] = {}
    tracks: tuple[str, ...] = ()
    from_number: str | None = None
    to_number: str | None = None
    sequence: int | None = None

    def __repr__(self) -> str:
        # custom_parameters carry the stream token: keep their values out of logs.
        return (f"StreamStarted(stream_id={self.stream_id!r}, call_id={self.call_id!r}, "
                f"media_format={self.media_format!r}, "
                f"custom_parameters=<{', '.join(sorted(self.custom_parameters))}>)")


class MediaReceived(msgspec.Struct, frozen=True):
    """One inbound audio message. ``payload`` is the provider's base64 string, undecoded: the
    native transcoder decodes it (and rejects bad base64). ``timestamp`` is in ms; Twilio and
    Exotel count from the stream start, Plivo sends Unix epoch ms."""

    payload: str
    sequence: int | None = None
    chunk: int | None = None
    timestamp: int | None = None

    def __repr__(self) -> str:
        return (f"MediaReceived(payload=<{len(self.payload)} chars>, sequence={self.sequence}, "
                f"chunk={self.chunk}, timestamp={self.timestamp})")


class DtmfReceived(msgspec.Struct, frozen=True):
    digit: str
    duration_ms: int | None = None


class MarkPlayed(msgspec.Struct, frozen=True):
    """A mark we sent has been reached: everything before it was played (``cleared=False``), or
    a clear dropped it (``cleared=True``). Each mark sent is reported exactly once."""

    name: str
    cleared: bool = False


class AudioCleared(msgspec.Struct, frozen=True):
    """The provider acknowledged a clear (Plivo ``clearedAudio``)."""


class StreamStopped(msgspec.Struct, frozen=True):
    """The provider ended the stream (``stop``); ``reason`` is the provider's, or "stopped"."""

    reason: str = "stopped"


class StreamClosed(msgspec.Struct, frozen=True):
    """Final event after ``receive(None)``: the transport is gone. ``after_stop`` tells whether
    the provider said ``stop`` first (Plivo normally just closes the socket)."""

    after_stop: bool


class ProtocolErrorEvent(msgspec.Struct, frozen=True):
    """The peer sent something we cannot accept; see the module docstring for codes."""

    code: int
    reason: str
    fatal: bool = True


Event = (
    StreamConnected | StreamStarted | MediaReceived | DtmfReceived | MarkPlayed | AudioCleared
    | StreamStopped | StreamClosed | ProtocolErrorEvent
)


# -- outbound ------------------------------------------------------------------------------

class SendMedia(msgspec.Struct, frozen=True):
    """Audio for the caller, already in the provider's format and base64-encoded."""

    payload: str

    def __repr__(self) -> str:
        return f"SendMedia(payload=<{len(self.payload)} chars>)"


class SendMark(msgspec.Struct, frozen=True):
    name: str


class SendClear(msgspec.Struct, frozen=True):
    pass


Outbound = SendMedia | SendMark | SendClear


def clip_reason(text: str) -> str:
    """Cut a reason to what fits in a WebSocket close frame, on a character boundary."""
    data = text.encode("utf-8", "replace")
    if len(data) <= MAX_REASON_BYTES:
        return text
    return data[: MAX_REASON_BYTES - 3].decode("utf-8", "ignore") + "..."


def short(value: object, limit: int = 32) -> str:
    """A short printable rendering of an untrusted value, for error reasons."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
