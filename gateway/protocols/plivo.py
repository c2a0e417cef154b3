"""Plivo Audio Stream, bidirectional (``<Stream bidirectional="true">``): protocols.md §3.3–3.4.

Plivo sends JSON text frames, with no ``connected`` greeting: ``start`` (``start.callId``,
``start.streamId``, ``start.accountId``, ``start.mediaFormat`` = the ``contentType`` we asked for,
and ``extra_headers`` from the XML ``extraHeaders`` as ``"k=v;k2=v2"`` or ``,``-separated or a
JSON object), ``media`` (``sequenceNumber``/``chunk`` are numbers, ``media.timestamp`` a string
of Unix epoch ms), ``dtmf``, ``playedStream`` (older docs: ``played``) when a checkpoint is
reached, ``clearedAudio`` acking a ``clearAudio``, and sometimes ``stop``; usually the socket
just closes. Pending checkpoints are never acked after a clear (the mark tracker reports them).

We render ``playAudio`` (``media.contentType``/``sampleRate`` of the stream's format, or the
``play_format`` given), ``checkpoint`` and ``clearAudio``, each with ``streamId``.
"""
from __future__ import annotations

from typing import Any, ClassVar

import msgspec
from msgspec import Struct

from ._base import (
    Channels, Count, Id, MediaStreamConnection, PeerError, Rate, jstr, parse_digit,
    parse_encoding, str_params,
)
from ._state import Input
from .events import (
    AudioCleared, DtmfReceived, Event, MarkPlayed, MediaFormat, MediaReceived, StreamStarted,
    StreamStopped,
)

MAX_EXTRA_HEADERS = 64
_CONTENT_TYPES = {"mulaw": "audio/x-mulaw", "l16": "audio/x-l16"}   # what playAudio accepts


class _MediaFormat(Struct, kw_only=True):
    encoding: str
    sampleRate: Rate
    channels: Channels = 1


class _StartBody(Struct, kw_only=True):
    callId: Id
    streamId: Id
    accountId: str = ""
    tracks: list[str] = []
    mediaFormat: _MediaFormat | None = None


class _Start(Struct, tag_field="event", tag="start", kw_only=True):
    start: _StartBody
    sequenceNumber: Count | None = None
    extra_headers: str | dict[str, Any] | None = None


class _MediaBody(Struct, kw_only=True):
    payload: str
    track: str = "inbound"
    chunk: Count | None = None
    timestamp: Count | None = None


class _Media(Struct, tag_field="event", tag="media", kw_only=True):
    media: _MediaBody
    streamId: str = ""
    sequenceNumber: Count | None = None


class _DtmfBody(Struct, kw_only=True):
    digit: str


class _Dtmf(Struct, tag_field="event", tag="dtmf", kw_only=True):
    dtmf: _DtmfBody
    streamId: str = ""


class _PlayedStream(Struct, tag_field="event", tag="playedStream", kw_only=True):
    name: str
    streamId: str = ""


class _Played(_PlayedStream, tag="played"):
    pass


class _ClearedAudio(Struct, tag_field="event", tag="clearedAudio", kw_only=True):
    streamId: str = ""


class _Stop(Struct, tag_field="event", tag="stop", kw_only=True):
    streamId: str = ""


def parse_extra_headers(raw: str | dict[str, Any] | None) -> dict[str, str]:
    """``extra_headers`` as a dict: ``"a=1;b=2"``, ``"a=1,b=2"`` or a JSON object (§3.2)."""
    if raw is None:
        return {}
    if isinstance(raw, str) and raw.lstrip().startswith("{"):
        try:
            raw = msgspec.json.decode(raw)
        except (msgspec.DecodeError, UnicodeError):
            raise PeerError(1007, "extra_headers is not valid JSON") from None
        if not isinstance(raw, dict):
            raise PeerError(1007, "extra_headers is not an object")
    if isinstance(raw, dict):
        if len(raw) > MAX_EXTRA_HEADERS:
            raise PeerError(1007, "too many extra_headers")
        return str_params(raw)
    out: dict[str, str] = {}
    for item in raw.replace(",", ";").split(";"):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            out[key.strip()] = value.strip()
    if len(out) > MAX_EXTRA_HEADERS:
        raise PeerError(1007, "too many extra_headers")
    return out


class PlivoConnection(MediaStreamConnection):
    """One Plivo audio stream, sans-IO.

    ``default_format`` is assumed when ``start`` carries no ``mediaFormat`` (set it to the
    ``contentType`` of the XML you answered with); ``play_format`` is declared on ``playAudio``
    (default: the stream's own format — Plivo wants one codec for the whole call, §3.10).
    """

    provider = "plivo"
    _messages: ClassVar[dict[type, Input]] = {
        _Start: Input.START, _Media: Input.MEDIA, _Dtmf: Input.DTMF, _PlayedStream: Input.MARK,
        _Played: Input.MARK, _ClearedAudio: Input.CLEARED, _Stop: Input.STOP,
    }
    _ignored = frozenset({"muteStream", "unmuteStream"})
    _clear_echoes_marks = False   # §3.4: clearAudio drops checkpoints without an ack...
    _clear_is_acked = True        # ...and answers clearedAudio

    _sid = ""
    _media_prefix = ""
    _plain_media = True
    _media_suffix = ""

    def __init__(
        self,
        *,
        default_format: MediaFormat = MediaFormat("mulaw", 8000),
        play_format: MediaFormat | None = None,
    ) -> None:
        super().__init__()
        if play_format is not None and play_format.encoding not in _CONTENT_TYPES:
            raise ValueError(f"Plivo cannot play {play_format.encoding}")
        self._default_format = default_format
        self._play_format = play_format

    def _translate(self, msg: msgspec.Struct) -> Event | None:
        cls = type(msg)
        if cls is _Start:
            return self._started(msg)
        self.check_stream_id(msg.streamId)
        if cls is _Media:
            media = msg.media
            if media.track == "outbound":
                return None
            return MediaReceived(media.payload, msg.sequenceNumber, media.chunk, media.timestamp)
        if cls is _Dtmf:
            return DtmfReceived(parse_digit(msg.dtmf.digit))
        if cls is _PlayedStream or cls is _Played:
            return MarkPlayed(msg.name)
        if cls is _ClearedAudio:
            return AudioCleared()
        return StreamStopped()

    def _started(self, msg: _Start) -> StreamStarted:
        body = msg.start
        fmt = body.mediaFormat
        if fmt is None:
            media_format = self._default_format
        else:
            media_format = MediaFormat(parse_encoding(fmt.encoding), fmt.sampleRate, fmt.channels)
        if (self._play_format or media_format).encoding not in _CONTENT_TYPES:
            raise PeerError(1007, f"Plivo stream in unsupported encoding {media_format.encoding}")
        return StreamStarted(
            stream_id=body.streamId,
            call_id=body.callId,
            account_id=body.accountId,
            media_format=media_format,
            custom_parameters=parse_extra_headers(msg.extra_headers),
            tracks=tuple(body.tracks),
            sequence=msg.sequenceNumber,
        )

    @property
    def outbound_format(self) -> MediaFormat | None:
        return None if self.stream is None else self._play_format or self.stream.media_format

    def _on_start(self, started: StreamStarted) -> None:
        play = self._play_format or started.media_format
        self._sid = jstr(started.stream_id)
        self._media_prefix = (
            '{"event":"playAudio","streamId":' + self._sid + ',"media":{"contentType":"'
            + _CONTENT_TYPES[play.encoding] + '","sampleRate":' + str(play.sample_rate)
            + ',"payload":'
        )

    def _render_media(self, payload: str) -> str:
        return self._media_prefix + jstr(payload) + "}}"

    def _render_mark(self, name: str) -> str:
        return '{"event":"checkpoint","streamId":' + self._sid + ',"name":' + jstr(name) + "}"

    def _render_clear(self) -> str:
        return '{"event":"clearAudio","streamId":' + self._sid + "}"

