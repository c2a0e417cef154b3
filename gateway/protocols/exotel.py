"""Exotel Voicebot applet (bidirectional AgentStream): protocols.md §4.2–4.3.

Exotel sends JSON text frames in snake_case: ``connected``, ``start`` (``stream_sid``,
``start.call_sid``, ``start.account_sid``, ``from``, ``to``, ``custom_parameters`` from the URL
query, ``media_format`` with ``encoding`` "audio/x-raw"/"raw" = PCM16LE and ``sample_rate``),
``media`` (base64 PCM16LE, roughly every 100 ms), ``dtmf`` (``digit``, ``duration``), ``mark``
(a mark we sent was reached) and ``stop`` (``reason``: stopped | callended). The docs drift
between strings and numbers and Exotel's own code uses camelCase ids: both are accepted.

We render ``media``/``mark``/``clear`` with ``stream_sid``. Outbound audio must come in chunks
that are a multiple of 320 bytes, at least 3.2 KB and at most 100 KB (§4.3): ``send`` enforces
it and :class:`ExotelChunker` produces such chunks from a PCM stream.
"""
from __future__ import annotations

from typing import Any, ClassVar

import msgspec
from msgspec import Struct

from ._base import (
    Count, MediaStreamConnection, PeerError, Rate, jstr, parse_digit, parse_encoding, str_params,
)
from ._state import Input
from .events import (
    DtmfReceived, Event, LocalProtocolError, MarkPlayed, MediaFormat, MediaReceived,
    StreamConnected, StreamStarted, StreamStopped,
)

FRAME_BYTES = 320          # 20 ms at 8 kHz PCM16: every chunk is a whole number of these
MIN_CHUNK_BYTES = 3_200
MAX_CHUNK_BYTES = 100_000


class _MediaFormat(Struct, kw_only=True):
    encoding: str = "audio/x-raw"
    sample_rate: Rate = 8000


class _StartBody(Struct, kw_only=True):
    stream_sid: str = ""
    streamSid: str = ""
    call_sid: str = ""
    callSid: str = ""
    account_sid: str = ""
    accountSid: str = ""
    custom_parameters: dict[str, Any] = {}
    media_format: _MediaFormat | None = None
    from_: str | None = msgspec.field(default=None, name="from")
    to: str | None = None


class _Connected(Struct, tag_field="event", tag="connected"):
    pass


class _Start(Struct, tag_field="event", tag="start", kw_only=True):
    start: _StartBody
    stream_sid: str = ""
    sequence_number: Count | None = None


class _MediaBody(Struct, kw_only=True):
    payload: str
    chunk: Count | None = None
    timestamp: Count | None = None


class _Media(Struct, tag_field="event", tag="media", kw_only=True):
    media: _MediaBody
    stream_sid: str = ""
    sequence_number: Count | None = None


class _DtmfBody(Struct, kw_only=True):
    digit: str
    duration: Count | None = None


class _Dtmf(Struct, tag_field="event", tag="dtmf", kw_only=True):
    dtmf: _DtmfBody
    stream_sid: str = ""


class _Name(Struct):
    name: str


class _Mark(Struct, tag_field="event", tag="mark", kw_only=True):
    mark: _Name
    stream_sid: str = ""


class _StopBody(Struct, kw_only=True):
    reason: str = "stopped"


class _Stop(Struct, tag_field="event", tag="stop", kw_only=True):
    stop: _StopBody | None = None
    stream_sid: str = ""


def exotel_chunk_ok(nbytes: int) -> bool:
    """Whether an outbound audio chunk of ``nbytes`` raw bytes obeys Exotel's rules."""
    return nbytes % FRAME_BYTES == 0 and MIN_CHUNK_BYTES <= nbytes <= MAX_CHUNK_BYTES


def _b64_decoded_len(payload: str) -> int | None:
    size = len(payload)
    if size % 4:
        return None
    return size // 4 * 3 - (payload[-2:].count("=") if size else 0)


class ExotelChunker:
    """Re-chunks a stream of raw audio bytes into chunks Exotel accepts. Pure and bounded.

    ``push`` returns every full chunk of ``chunk_bytes`` now available; ``flush`` returns the
    rest padded with ``pad`` (silence: zero bytes for PCM16) up to a legal size, at the end of an
    utterance; ``reset`` drops it (barge-in).
    """

    def __init__(self, chunk_bytes: int = MIN_CHUNK_BYTES, *, pad: bytes = b"\x00") -> None:
        if not exotel_chunk_ok(chunk_bytes):
            raise ValueError(f"chunk_bytes must be a multiple of {FRAME_BYTES} in "
                             f"{MIN_CHUNK_BYTES}..{MAX_CHUNK_BYTES}, not {chunk_bytes}")
        if len(pad) != 1:
            raise ValueError("pad must be one byte")
        self.chunk_bytes = chunk_bytes
        self._pad = pad
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def push(self, data: bytes) -> list[bytes]:
        self._buffer += data
        size = self.chunk_bytes
        full = len(self._buffer) // size * size
        if not full:
            return []
        chunks = [bytes(self._buffer[i:i + size]) for i in range(0, full, size)]
        del self._buffer[:full]
        return chunks

    def flush(self) -> bytes | None:
        if not self._buffer:
            return None
        frames = -(-len(self._buffer) // FRAME_BYTES)
        target = max(MIN_CHUNK_BYTES, frames * FRAME_BYTES)
        chunk = bytes(self._buffer) + self._pad * (target - len(self._buffer))
        self._buffer.clear()
        return chunk

    def reset(self) -> None:
        self._buffer.clear()


class ExotelConnection(MediaStreamConnection):
    """One Exotel Voicebot stream, sans-IO.

    ``default_format`` applies when ``start`` has no ``media_format`` (PCM16LE 8 kHz is Exotel's
    default; pass the ``sample-rate`` you configured). ``enforce_chunk_rules`` makes ``send``
    refuse media chunks that break §4.3 (a ``LocalProtocolError``: our bug, not the peer's).
    """

    provider = "exotel"
    _messages: ClassVar[dict[type, Input]] = {
        _Connected: Input.CONNECTED, _Start: Input.START, _Media: Input.MEDIA,
        _Dtmf: Input.DTMF, _Mark: Input.MARK, _Stop: Input.STOP,
    }
    # Undocumented (§4.2 [?]). Assuming "no echo" is the safe side: an echo that does come for a
    # cleared mark names no pending mark and is ignored.
    _clear_echoes_marks = False

    _sid = ""
    _media_prefix = ""

    def __init__(
        self,
        *,
        default_format: MediaFormat = MediaFormat("l16", 8000),
        enforce_chunk_rules: bool = True,
    ) -> None:
        super().__init__()
        self._default_format = default_format
        self._enforce_chunk_rules = enforce_chunk_rules

    def _translate(self, msg: msgspec.Struct) -> Event | None:
        cls = type(msg)
        if cls is _Media:
            self.check_stream_id(msg.stream_sid)
            media = msg.media
            return MediaReceived(media.payload, msg.sequence_number, media.chunk, media.timestamp)
        if cls is _Start:
            return self._started(msg)
        if cls is _Connected:
            return StreamConnected()
        self.check_stream_id(msg.stream_sid)
        if cls is _Mark:
            return MarkPlayed(msg.mark.name)
        if cls is _Dtmf:
            return DtmfReceived(parse_digit(msg.dtmf.digit), msg.dtmf.duration)
        return StreamStopped(msg.stop.reason if msg.stop is not None else "stopped")

    def _started(self, msg: _Start) -> StreamStarted:
        body = msg.start
        stream_id = body.stream_sid or body.streamSid or msg.stream_sid
        call_id = body.call_sid or body.callSid
        if not stream_id or not call_id:
            raise PeerError(1007, "start without stream_sid or call_sid")
        if len(stream_id) > 256 or len(call_id) > 256:
            raise PeerError(1007, "start with an over-long id")
        fmt = body.media_format
        if fmt is None:
            media_format = self._default_format
        else:
            media_format = MediaFormat(parse_encoding(fmt.encoding), fmt.sample_rate)
        return StreamStarted(
            stream_id=stream_id,
            call_id=call_id,
            account_id=body.account_sid or body.accountSid,
            media_format=media_format,
            custom_parameters=str_params(body.custom_parameters),
            from_number=body.from_,
            to_number=body.to,
            sequence=msg.sequence_number,
        )

    def _on_start(self, started: StreamStarted) -> None:
        self._sid = jstr(started.stream_id)
        self._media_prefix = '{"event":"media","stream_sid":' + self._sid + ',"media":{"payload":'

    def _render_media(self, payload: str) -> str:
        if self._enforce_chunk_rules:
            nbytes = _b64_decoded_len(payload)
            if nbytes is None or not exotel_chunk_ok(nbytes):
                raise LocalProtocolError(
                    f"Exotel media chunk must be a multiple of {FRAME_BYTES} bytes in "
                    f"{MIN_CHUNK_BYTES}..{MAX_CHUNK_BYTES} (got {nbytes}); use ExotelChunker")
        return self._media_prefix + jstr(payload) + "}}"

    def _render_mark(self, name: str) -> str:
        return '{"event":"mark","stream_sid":' + self._sid + ',"mark":{"name":' + jstr(name) + "}}"

    def _render_clear(self) -> str:
        return '{"event":"clear","stream_sid":' + self._sid + "}"
