"""The canonical conversation protocol: the widget's JSON, also spoken by external agents.

DESIGN.md "The canonical conversation protocol". Audio travels in binary frames (PCM16LE mono,
16 kHz towards the agent, 24 kHz towards the caller); everything else is one JSON object per text
frame, discriminated by ``type``:

=============  =====================================================  ==========================
type           fields                                                 sent by
=============  =====================================================  ==========================
text           text                                                   caller -> agent
transcript     role ("assistant"|"user"), text, final (default true)  agent -> caller; gateway
dtmf           digit (one of 0-9 * # A-D)                             caller -> agent
clear          -                                                      agent (barge-in)
mark           name, cleared (default false)                          agent; echoed back to it
start          session_id, channel_id, channel_type, caller, ...      gateway -> agent (/widget)
end            reason                                                 any side
error          code, message                                          any side
=============  =====================================================  ==========================

Who may send what (:data:`FROM_CALLER`, :data:`FROM_AGENT`; ``decode(data, sender=...)`` enforces
it): the caller (widget) sends ``text``, ``dtmf``, ``mark`` (a widget acking playback of a mark it
was forwarded) and ``end``; the agent sends ``transcript`` (its replies, also on text channels),
``clear``, ``mark``, ``end`` and ``error``. ``start`` comes only from the gateway.

Bounds (inside the decoder): a message is at most 64 KiB; ``text``/``transcript`` text at most
4096 characters; mark names 1..256 characters; ``end.reason`` 256; ``error.code`` 64 and
``error.message`` 1024 characters. Unknown fields are ignored (forward compatibility); unknown
types are errors.

Errors: :func:`decode` raises :class:`ProtocolError` with a short machine ``code`` (malformed_json,
too_large, not_an_object, unknown_type, invalid_field, not_allowed, odd_audio_length) and a
message naming the problem, never the payload. The session *continues* on such errors: the
caller sends ``error.to_event()`` back to whoever sent the bad frame.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union

import msgspec
from msgspec import Meta, Struct

from .events import MAX_MESSAGE_BYTES, too_large

MAX_TEXT_CHARS = 4096
MAX_NAME_CHARS = 256

_Text = Annotated[str, Meta(max_length=MAX_TEXT_CHARS)]
Name = Annotated[str, Meta(min_length=1, max_length=MAX_NAME_CHARS)]
Short = Annotated[str, Meta(max_length=MAX_NAME_CHARS)]
Digit = Literal["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "#", "A", "B", "C", "D"]


class _Event(Struct, frozen=True, tag_field="type", omit_defaults=True, kw_only=True):
    pass


class Text(_Event, tag="text"):
    text: _Text


class Transcript(_Event, tag="transcript"):
    role: Literal["assistant", "user"]
    text: _Text
    final: bool = True


class Dtmf(_Event, tag="dtmf"):
    digit: Digit


class Clear(_Event, tag="clear"):
    pass


class Mark(_Event, tag="mark"):
    name: Name
    cleared: bool = False


class Caller(Struct, frozen=True, omit_defaults=True, kw_only=True):
    number: Short | None = None
    name: Short | None = None


class AudioSpec(Struct, frozen=True, kw_only=True):
    in_rate: Annotated[int, Meta(gt=0, le=192_000)] = 16_000
    out_rate: Annotated[int, Meta(gt=0, le=192_000)] = 24_000
    encoding: Literal["pcm16"] = "pcm16"


class Start(_Event, tag="start", omit_defaults=False):  # agents see every field
    session_id: Name
    channel_id: Name
    channel_type: Short          # web | voice | whatsapp | sms (Directory's ChannelInfo.type)
    caller: Caller | None = None
    variables: dict[str, Any] = {}
    audio: AudioSpec = AudioSpec()


class End(_Event, tag="end"):
    reason: Short = ""


class Error(_Event, tag="error"):
    code: Annotated[str, Meta(max_length=64)]
    message: Annotated[str, Meta(max_length=1024)] = ""


Event = Union[Text, Transcript, Dtmf, Clear, Mark, Start, End, Error]
ALL_TYPES: tuple[type, ...] = Event.__args__  # type: ignore[attr-defined]

FROM_CALLER: frozenset[type] = frozenset({Text, Dtmf, Mark, End})
FROM_AGENT: frozenset[type] = frozenset({Transcript, Clear, Mark, End, Error})
_SENDERS = {"caller": FROM_CALLER, "agent": FROM_AGENT}
_TAGS = {cls.__struct_config__.tag: cls for cls in ALL_TYPES}


class ProtocolError(Exception):
    """A frame the peer should not have sent; the session answers with an ``error`` event."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def to_event(self) -> Error:
        return Error(code=self.code, message=self.message)


class _Typed(Struct):
    type: str


_DECODER = msgspec.json.Decoder(Event)
_TYPED = msgspec.json.Decoder(_Typed)
_ENCODER = msgspec.json.Encoder()


def decode(data: str | bytes, *, sender: Literal["caller", "agent"] | None = None) -> Event:
    """Parse one JSON text frame. ``sender`` additionally checks the type may come from there."""
    if too_large(data):
        raise ProtocolError("too_large", f"message over {MAX_MESSAGE_BYTES} bytes")
    try:
        event = _DECODER.decode(data)
    except msgspec.ValidationError as exc:
        raise _explain(data, exc) from None
    except (msgspec.DecodeError, UnicodeError, RecursionError):   # RecursionError: hostile
        raise ProtocolError("malformed_json", "message is not valid JSON") from None  # nesting
    if sender is not None and type(event) not in _SENDERS[sender]:
        raise ProtocolError("not_allowed", f"{_tag(event)!r} may not be sent by the {sender}")
    return event


def encode(event: Event) -> bytes:
    """Render an event as one JSON text frame (defaults omitted)."""
    return _ENCODER.encode(event)


def check_audio_frame(data: bytes) -> None:
    """Binary frames carry PCM16: an odd byte count cannot be audio."""
    if len(data) % 2:
        raise ProtocolError("odd_audio_length", f"audio frame of {len(data)} bytes is not PCM16")


def _explain(data: str | bytes, exc: msgspec.ValidationError) -> ProtocolError:
    """Turn a validation failure into: not an object, unknown type, or a bad field."""
    try:
        kind = _TYPED.decode(data).type
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeError):
        return ProtocolError("not_an_object", "expected a JSON object with a string 'type'")
    except RecursionError:                      # hostile nesting inside a field _TYPED skips
        return ProtocolError("malformed_json", "message nested too deeply")
    if kind not in _TAGS:
        shown = kind if len(kind) <= 32 else kind[:29] + "..."
        return ProtocolError("unknown_type", f"unknown type {shown!r}")
    return ProtocolError("invalid_field", f"bad {kind!r} message: {_clip(str(exc))}")


def _tag(event: Event) -> str:
    return type(event).__struct_config__.tag


def _clip(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
