"""The media-stream state machine as data (h11's ``_state.py`` idea).

Every provider codec (Twilio, Plivo, Exotel) runs the same machine::

    CONNECTED --start--> STARTED --media--> STREAMING --stop--> STOPPED
         \\___________ any fatal peer error ___________\\--> ERROR (one way)

``CONNECTED`` means "the WebSocket is up, no ``start`` yet" (Twilio/Exotel send a ``connected``
message there; Plivo does not). ``STARTED`` is "start seen, no inbound media yet", ``STREAMING``
"inbound media has flowed". Transport loss (``receive(None)``) moves every live state to STOPPED.

The tables below are the only place the rules live: the codecs look transitions up here and the
tests walk every (state, input) pair. A pair missing from :data:`RECEIVE` is a peer protocol
violation (close code :data:`OUT_OF_STATE_CODES` or 1002); a pair missing from :data:`SEND` is a
local bug (``LocalProtocolError``).
"""
from __future__ import annotations

import enum


class _Fast(enum.Enum):
    # Members compare by identity anyway; Enum's default __hash__ is a Python-level call, and
    # every inbound message hashes a (State, Input) pair.
    __hash__ = object.__hash__


class State(_Fast):
    CONNECTED = "connected"
    STARTED = "started"
    STREAMING = "streaming"
    STOPPED = "stopped"
    ERROR = "error"


class Input(_Fast):
    """What the provider (or the transport) can hand the codec."""

    CONNECTED = "connected"   # Twilio/Exotel greeting
    START = "start"
    MEDIA = "media"
    DTMF = "dtmf"
    MARK = "mark"             # a marker we sent, reached (Twilio/Exotel mark, Plivo playedStream)
    CLEARED = "cleared"       # the provider acknowledging a clear (Plivo clearedAudio)
    STOP = "stop"
    CLOSE = "close"           # receive(None): the transport is gone


class Output(_Fast):
    """What we can render towards the provider."""

    MEDIA = "media"
    MARK = "mark"
    CLEAR = "clear"


_LIVE = (State.STARTED, State.STREAMING)

RECEIVE: dict[tuple[State, Input], State] = {
    (State.CONNECTED, Input.CONNECTED): State.CONNECTED,
    (State.CONNECTED, Input.START): State.STARTED,
    # A stop before any start is harmless (the call ended while connecting): accept it.
    (State.CONNECTED, Input.STOP): State.STOPPED,
    (State.STARTED, Input.MEDIA): State.STREAMING,
    (State.STREAMING, Input.MEDIA): State.STREAMING,
    **{(s, i): s for s in _LIVE for i in (Input.DTMF, Input.MARK, Input.CLEARED)},
    **{(s, Input.STOP): State.STOPPED for s in _LIVE},
    # The transport going away ends every state but ERROR, which is terminal.
    **{(s, Input.CLOSE): State.STOPPED for s in State if s is not State.ERROR},
    (State.ERROR, Input.CLOSE): State.ERROR,
}

# Out-of-state inputs that deserve a more specific close code than 1002 (protocol error).
OUT_OF_STATE_CODES: dict[tuple[State, Input], int] = {
    (s, Input.START): 1008 for s in _LIVE   # a second start for a live stream: policy violation
}

SEND: dict[tuple[State, Output], State] = {
    (s, o): s for s in _LIVE for o in Output
}


def out_of_state_code(state: State, inp: Input) -> int:
    """The close code for a peer input that :data:`RECEIVE` does not allow in ``state``."""
    return OUT_OF_STATE_CODES.get((state, inp), 1002)


def to_dot() -> str:
    """The receive table as Graphviz source (``python -c 'from gateway.protocols._state import
    to_dot; print(to_dot())' | dot -Tpng``); forbidden pairs all lead to ERROR."""
    edges = [f'  {s.name} -> {n.name} [label="{i.value}"];' for (s, i), n in RECEIVE.items()]
    return "digraph media_stream {\n" + "\n".join(edges) + "\n}"
