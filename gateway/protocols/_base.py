"""What the three provider codecs share: bounds, decoding, the state machine, marks, errors.

A provider module declares its wire messages as msgspec Structs tagged on ``event`` and
translates each into an event (``_translate``); this base does everything else, so the per-frame
path is: size check, one typed msgspec decode, two dict lookups, one small Struct.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, ClassVar, Union

import msgspec
from msgspec import Meta

from . import _state
from ._state import Input, Output, State
from .events import (
    DTMF_DIGITS, MAX_MESSAGE_BYTES, Encoding, Event, LocalProtocolError, MarkPlayed, MediaFormat,
    Outbound,
    ProtocolErrorEvent, SendClear, SendMark, SendMedia, StreamClosed, StreamStarted, clip_reason,
    short, too_large,
)
from .marks import MarkTracker

_JSON = msgspec.json.Encoder()
# Enum members looked up once: ``Input.MEDIA`` costs a class-attribute lookup per use.
_MEDIA, _MARK, _START, _STOP, _CLEARED = (
    Input.MEDIA, Input.MARK, Input.START, Input.STOP, Input.CLEARED)
_RECEIVE = _state.RECEIVE
_SEND = _state.SEND
_MEDIA_OUT = Output.MEDIA
_ERROR = State.ERROR
MAX_MARK_NAME = 256

# Constrained field types for the providers' wire Structs.
Count = Annotated[int, Meta(ge=0)]                       # sequence numbers, chunks, timestamps
Rate = Annotated[int, Meta(gt=0, le=192_000)]
Channels = Annotated[int, Meta(ge=1, le=8)]
Id = Annotated[str, Meta(min_length=1, max_length=256)]  # stream / call ids


def jstr(text: str) -> str:
    """``text`` as a JSON string literal (quoted and escaped)."""
    return _JSON.encode(text).decode()


class PeerError(Exception):
    """Raised inside a codec while translating a message; becomes a fatal ProtocolErrorEvent."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class _Named(msgspec.Struct):
    """Just the event name: used on the error path to tell an unknown event from a bad one."""

    event: str


_NAMED = msgspec.json.Decoder(_Named)

_ENCODINGS: dict[str, Encoding] = {
    **dict.fromkeys(("audio/x-mulaw", "audio/x-ulaw", "mulaw", "ulaw", "pcmu"), "mulaw"),
    **dict.fromkeys(("audio/x-alaw", "alaw", "pcma"), "alaw"),
    **dict.fromkeys(("audio/x-l16", "audio/l16", "l16", "audio/x-raw", "raw", "slin",
                     "linear16", "pcm16"), "l16"),
}


def parse_encoding(raw: str) -> Encoding:
    """Map a provider's encoding name (``audio/x-mulaw;rate=8000``, ``raw``...) to ours."""
    key = raw.split(";", 1)[0].strip().lower()
    try:
        return _ENCODINGS[key]
    except KeyError:
        raise PeerError(1007, f"unsupported media encoding {short(raw)}") from None


def parse_digit(raw: str) -> str:
    digit = raw.upper()
    if len(digit) != 1 or digit not in DTMF_DIGITS:
        raise PeerError(1007, f"invalid DTMF digit {short(raw, 8)}")
    return digit


def str_params(raw: dict[str, Any] | None) -> dict[str, str]:
    """Custom parameters as ``str -> str``; scalar values are stringified, nested ones dropped."""
    if not raw:
        return {}
    out: dict[str, str] = {}
    for key, value in raw.items():
        if isinstance(value, str):
            out[key] = value
        elif isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, (int, float)):
            out[key] = str(value)
    return out


class MediaStreamConnection:
    """Base of the provider codecs. Subclasses set the class attributes and ``_translate``."""

    provider: ClassVar[str]
    _messages: ClassVar[dict[type, Input]]   # the provider's wire Structs -> state-machine input
    _ignored: ClassVar[frozenset[str]] = frozenset()  # known, deliberately unused event names
    _clear_echoes_marks: ClassVar[bool]     # see MarkTracker
    _clear_is_acked: ClassVar[bool] = False
    # Built from _messages by __init_subclass__:
    _decoder: ClassVar[msgspec.json.Decoder]
    _known: ClassVar[frozenset[str]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        types = tuple(cls._messages)
        # strict=False: numbers sent as strings ("sequenceNumber": "4") parse as ints, which
        # also absorbs the providers' documented string/number drift.
        cls._decoder = msgspec.json.Decoder(Union[types], strict=False)  # type: ignore[valid-type]
        cls._known = frozenset(t.__struct_config__.tag for t in types)

    def __init__(self) -> None:
        self.state = State.CONNECTED
        self.stream: StreamStarted | None = None   # the start event, once seen
        self._marks = MarkTracker(
            clear_echoes=self._clear_echoes_marks, clear_acks=self._clear_is_acked)
        self._backlog: list[MarkPlayed] = []      # marks dropped by send(SendClear())
        self._stopped = False
        self._closed = False

    # -- inbound -------------------------------------------------------------------------

    def receive(self, message: str | bytes | None) -> list[Event]:
        """Feed one WebSocket message (``None`` = the transport is gone); get its events."""
        if message is None:
            return self._on_close()
        if self._closed:
            raise LocalProtocolError("receive() after the transport closed")
        if self._backlog:
            events, self._backlog = self._backlog, []
        else:
            events = []
        if self.state is _ERROR:
            return events
        event = self._receive_one(message)
        if event is not None:
            events.append(event)
        return events

    def receive_many(self, messages: Iterable[str | bytes | None]) -> list[Event]:
        """``receive`` over a batch of messages (e.g. all frames a transport read at once)."""
        events: list[Event] = []
        for message in messages:
            events.extend(self.receive(message))
        return events

    def _receive_one(self, message: str | bytes) -> Event | None:
        if too_large(message):
            return self._fail(1009, f"message over {MAX_MESSAGE_BYTES} bytes")
        try:
            msg = self._decoder.decode(message)
        except msgspec.ValidationError as exc:
            return self._invalid(message, exc)
        except (msgspec.DecodeError, UnicodeError, RecursionError):   # hostile nesting: msgspec
            return self._fail(1007, "malformed JSON or invalid UTF-8")  # hits Python's limit
        inp = self._messages[type(msg)]
        following = _RECEIVE.get((self.state, inp))
        if following is None:
            code = _state.out_of_state_code(self.state, inp)
            return self._fail(code, f"{inp.value} not allowed in state {self.state.value}")
        try:
            event = self._translate(msg)
        except PeerError as exc:
            return self._fail(exc.code, exc.reason)
        self.state = following
        if inp is _MEDIA:   # the per-frame path: nothing more to do
            return event
        if inp is _MARK:
            return self._marks.echoed(event.name)
        if inp is _START:
            self.stream = event
            self._on_start(event)
            self._media_prefix_utf8 = self._media_prefix.encode()
        elif inp is _STOP:
            self._stopped = True
        elif inp is _CLEARED:
            self._marks.clear_acknowledged()
        return event

    def _invalid(self, message: str | bytes, exc: msgspec.ValidationError) -> Event | None:
        """A decode that failed validation: an unknown event, or a known one with bad fields."""
        try:
            name = _NAMED.decode(message).event
        except (msgspec.DecodeError, UnicodeError):
            return self._fail(1003, "not a JSON object with a string 'event'")
        except RecursionError:                  # hostile nesting inside a field _NAMED skips
            return self._fail(1007, "message nested too deeply")
        if name in self._ignored:
            return None
        if name not in self._known:
            reason = clip_reason(f"unhandled event {short(name)}")
            return ProtocolErrorEvent(1003, reason, fatal=False)
        return self._fail(1007, f"bad {short(name, 24)} message: {exc}")

    def _on_close(self) -> list[Event]:
        if self._closed:
            return []
        self._closed = True
        self.state = _state.RECEIVE[(self.state, Input.CLOSE)]
        events, self._backlog = self._backlog, []
        events.append(StreamClosed(after_stop=self._stopped))
        return events

    def _fail(self, code: int, reason: str) -> ProtocolErrorEvent:
        self.state = State.ERROR
        return ProtocolErrorEvent(code, clip_reason(reason))

    def check_stream_id(self, stream_id: str | None) -> None:
        """Messages naming another stream than the one started are a policy violation."""
        if stream_id and self.stream is not None and stream_id != self.stream.stream_id:
            raise PeerError(1008, "message for another stream id")

    # -- outbound ------------------------------------------------------------------------

    def send(self, event: Outbound) -> str:
        """Render one outbound event as the provider's JSON text message."""
        if self._closed:
            raise LocalProtocolError("send() after the transport closed")
        cls = type(event)
        out = _OUTPUTS.get(cls)
        if out is None:
            raise LocalProtocolError(f"not an outbound event: {cls.__name__}")
        if (self.state, out) not in _state.SEND:
            raise LocalProtocolError(f"cannot send {out.value} in state {self.state.value}")
        if cls is SendMedia:
            if type(event.payload) is not str:
                raise LocalProtocolError("SendMedia.payload must be a base64 str")
            return self._render_media(event.payload)
        if cls is SendMark:
            name = event.name
            if type(name) is not str or not 0 < len(name) <= MAX_MARK_NAME:
                raise LocalProtocolError(f"mark name must be a str of 1..{MAX_MARK_NAME} chars")
            self._marks.sent(name)
            return self._render_mark(name)
        self._backlog.extend(self._marks.cleared())
        return self._render_clear()

    def send_media_b64(self, payload: bytes) -> bytes:
        """``send(SendMedia(payload))`` for the per-frame path: the base64 payload as ASCII bytes
        (what the native transcoder makes) in, the message as UTF-8 bytes out, same checks."""
        if self._plain_media and not self._closed and (self.state, _MEDIA_OUT) in _SEND:
            # base64 needs no JSON escaping: the start's prefix, the payload quoted, the suffix
            return self._media_prefix_utf8 + b'"' + payload + b'"}}'
        return self.send(SendMedia(payload.decode("ascii"))).encode()

    def clear(self) -> tuple[str, list[MarkPlayed]]:
        """Barge-in: the clear message to send, and the pending marks it drops (reported
        ``cleared=True``; each mark is reported once, so they do not come back from receive)."""
        wire = self.send(SendClear())
        dropped, self._backlog = self._backlog, []   # the backlog only ever holds these marks
        return wire, dropped

    @property
    def pending_marks(self) -> tuple[str, ...]:
        return self._marks.pending

    @property
    def outbound_format(self) -> MediaFormat | None:
        """The format ``SendMedia`` payloads must be in (None before ``start``)."""
        return None if self.stream is None else self.stream.media_format

    # -- provider hooks ------------------------------------------------------------------

    def _translate(self, msg: Any) -> Event:
        raise NotImplementedError

    def _on_start(self, started: StreamStarted) -> None:
        """Precompute what rendering needs (the JSON-escaped stream id)."""

    # Providers whose media message is ``_media_prefix`` + the quoted payload + ``}}`` with no
    # per-payload rule set this (Exotel checks chunk sizes: it renders through send()).
    _plain_media = False
    _media_prefix = ""
    _media_prefix_utf8 = b""

    def _render_media(self, payload: str) -> str:
        raise NotImplementedError

    def _render_mark(self, name: str) -> str:
        raise NotImplementedError

    def _render_clear(self) -> str:
        raise NotImplementedError


_OUTPUTS: dict[type, Output] = {
    SendMedia: Output.MEDIA, SendMark: Output.MARK, SendClear: Output.CLEAR,
}
