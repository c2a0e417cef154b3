"""Twilio Media Streams, bidirectional (``<Connect><Stream>``): protocols.md §1.3–1.5.

Twilio sends JSON text frames: ``connected``, ``start`` (``streamSid``, ``callSid``,
``accountSid``, ``tracks``, ``mediaFormat`` = audio/x-mulaw 8000 Hz, ``customParameters`` from the
TwiML ``<Parameter>``s), then ``media`` (base64 µ-law in ``media.payload``; ``sequenceNumber``,
``media.chunk`` and ``media.timestamp`` are *strings* of integers), ``dtmf``, ``mark`` (the echo
of a mark we sent, also sent for every pending mark when we ``clear``) and ``stop``.

We render ``{"event":"media","streamSid":..,"media":{"payload":..}}``,
``{"event":"mark","streamSid":..,"mark":{"name":..}}`` and ``{"event":"clear","streamSid":..}``.
"""
from __future__ import annotations

from typing import ClassVar

import msgspec
from msgspec import Struct

from ._base import (
    Channels, Count, Id, MediaStreamConnection, Rate, jstr, parse_digit, parse_encoding,
)
from ._state import Input
from .events import (
    DtmfReceived, Event, MarkPlayed, MediaFormat, MediaReceived, StreamConnected, StreamStarted,
    StreamStopped,
)
_TWILIO_PLAYBACK = MediaFormat("mulaw", 8000)


class _MediaFormat(Struct, kw_only=True):
    encoding: str
    sampleRate: Rate
    channels: Channels = 1


class _StartBody(Struct, kw_only=True):
    streamSid: Id
    callSid: Id
    accountSid: str = ""
    tracks: list[str] = []
    mediaFormat: _MediaFormat
    customParameters: dict[str, str] = {}


class _Connected(Struct, tag_field="event", tag="connected", kw_only=True):
    protocol: str = ""
    version: str = ""


class _Start(Struct, tag_field="event", tag="start", kw_only=True):
    start: _StartBody
    streamSid: str = ""
    sequenceNumber: Count | None = None


class _MediaBody(Struct, kw_only=True):
    payload: str
    track: str = "inbound"
    chunk: Count | None = None
    timestamp: Count | None = None


class _Media(Struct, tag_field="event", tag="media", kw_only=True):
    media: _MediaBody
    streamSid: str = ""
    sequenceNumber: Count | None = None


class _DtmfBody(Struct, kw_only=True):
    digit: str
    track: str = ""


class _Dtmf(Struct, tag_field="event", tag="dtmf", kw_only=True):
    dtmf: _DtmfBody
    streamSid: str = ""


class _Name(Struct):
    name: str


class _Mark(Struct, tag_field="event", tag="mark", kw_only=True):
    mark: _Name
    streamSid: str = ""


class _Stop(Struct, tag_field="event", tag="stop", kw_only=True):
    streamSid: str = ""


class TwilioConnection(MediaStreamConnection):
    """One Twilio media stream, sans-IO. See :class:`MediaStreamConnection` for the surface."""

    provider = "twilio"
    _messages: ClassVar[dict[type, Input]] = {
        _Connected: Input.CONNECTED, _Start: Input.START, _Media: Input.MEDIA,
        _Dtmf: Input.DTMF, _Mark: Input.MARK, _Stop: Input.STOP,
    }
    _clear_echoes_marks = True   # §1.4: clear sends back every pending mark

    _sid = ""
    _media_prefix = ""
    _plain_media = True

    def _translate(self, msg: msgspec.Struct) -> Event | None:
        cls = type(msg)
        if cls is _Media:
            self.check_stream_id(msg.streamSid)
            media = msg.media
            if media.track == "outbound":   # only on unidirectional both_tracks streams
                return None
            return MediaReceived(media.payload, msg.sequenceNumber, media.chunk, media.timestamp)
        if cls is _Start:
            return self._started(msg)
        if cls is _Connected:
            return StreamConnected(msg.protocol, msg.version)
        self.check_stream_id(msg.streamSid)
        if cls is _Mark:
            return MarkPlayed(msg.mark.name)
        if cls is _Dtmf:
            return DtmfReceived(parse_digit(msg.dtmf.digit))
        return StreamStopped()

    def _started(self, msg: _Start) -> StreamStarted:
        body = msg.start
        fmt = body.mediaFormat
        return StreamStarted(
            stream_id=body.streamSid,
            call_id=body.callSid,
            account_id=body.accountSid,
            media_format=MediaFormat(parse_encoding(fmt.encoding), fmt.sampleRate, fmt.channels),
            custom_parameters=body.customParameters,
            tracks=tuple(body.tracks),
            sequence=msg.sequenceNumber,
        )

    @property
    def outbound_format(self) -> MediaFormat | None:
        # §1.4: whatever the start says, bidirectional playback is µ-law 8 kHz mono.
        return None if self.stream is None else _TWILIO_PLAYBACK

    def _on_start(self, started: StreamStarted) -> None:
        self._sid = jstr(started.stream_id)
        self._media_prefix = '{"event":"media","streamSid":' + self._sid + ',"media":{"payload":'

    def _render_media(self, payload: str) -> str:
        return self._media_prefix + jstr(payload) + "}}"

    def _render_mark(self, name: str) -> str:
        return '{"event":"mark","streamSid":' + self._sid + ',"mark":{"name":' + jstr(name) + "}}"

    def _render_clear(self) -> str:
        return '{"event":"clear","streamSid":' + self._sid + "}"
