"""Provider media-stream codecs (Twilio, Plivo, Exotel): golden transcripts, a provider player
round trip with a mark/clear model, the state table walked pair by pair, and hypothesis
properties (garbage never raises anything but our protocol error; batching never matters)."""
from __future__ import annotations

import base64
import json
import pathlib
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.protocols import (
    CODECS, AudioCleared, DtmfReceived, ExotelChunker, ExotelConnection, LocalProtocolError,
    MarkPlayed, MediaReceived, PlivoConnection, ProtocolErrorEvent, SendClear, SendMark,
    SendMedia, State, StreamClosed, StreamConnected, StreamStarted, StreamStopped, exotel_chunk_ok,
)
from gateway.protocols import _state, events as ev
from gateway.protocols.plivo import parse_extra_headers

GOLDEN = pathlib.Path(__file__).resolve().parent / "golden"
PROVIDERS = ("twilio", "plivo", "exotel")
FUZZ = settings(max_examples=1000, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
INBOUND_TYPES = (StreamConnected, StreamStarted, MediaReceived, DtmfReceived, MarkPlayed,
                 AudioCleared, StreamStopped, StreamClosed, ProtocolErrorEvent)


# -- a provider player: renders what the provider sends, parses what it receives ---------------

class Player:
    """Plays one provider's side of the stream (protocols.md §1, §3, §4). Test code only."""

    def __init__(self, provider: str, stream_id: str = "MZ-stream-1", call_id: str = "CA-call-1"):
        self.provider, self.sid, self.call = provider, stream_id, call_id
        self.seq = 0

    def _n(self) -> Any:
        self.seq += 1
        return self.seq if self.provider == "plivo" else str(self.seq)   # Twilio/Exotel: strings

    def connected(self) -> dict | None:
        if self.provider == "twilio":
            return {"event": "connected", "protocol": "Call", "version": "1.0.0"}
        if self.provider == "exotel":
            return {"event": "connected"}
        return None   # Plivo has no greeting

    def start(self, params: dict[str, str]) -> dict:
        if self.provider == "twilio":
            return {"event": "start", "sequenceNumber": self._n(), "streamSid": self.sid, "start": {
                "accountSid": "AC1", "streamSid": self.sid, "callSid": self.call, "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": params}}
        if self.provider == "plivo":
            return {"event": "start", "sequenceNumber": self._n(), "start": {
                "callId": self.call, "streamId": self.sid, "accountId": "MA1", "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000}},
                "extra_headers": ";".join(f"{k}={v}" for k, v in params.items())}
        return {"event": "start", "sequence_number": self._n(), "stream_sid": self.sid, "start": {
            "stream_sid": self.sid, "call_sid": self.call, "account_sid": "AC1",
            "custom_parameters": params,
            "media_format": {"encoding": "audio/x-raw", "sample_rate": "8000", "bit_rate": "16"}}}

    def media(self, payload: str, chunk: int, ts: int) -> dict:
        seq = self._n()
        if self.provider == "twilio":
            return {"event": "media", "sequenceNumber": seq, "streamSid": self.sid, "media": {
                "track": "inbound", "chunk": str(chunk), "timestamp": str(ts), "payload": payload}}
        if self.provider == "plivo":
            return {"event": "media", "sequenceNumber": seq, "streamId": self.sid, "media": {
                "track": "inbound", "timestamp": str(ts), "chunk": chunk, "payload": payload}}
        return {"event": "media", "sequence_number": seq, "stream_sid": self.sid,
                "media": {"chunk": str(chunk), "timestamp": str(ts), "payload": payload}}

    def dtmf(self, digit: str) -> dict:
        if self.provider == "twilio":
            return {"event": "dtmf", "streamSid": self.sid, "sequenceNumber": self._n(),
                    "dtmf": {"track": "inbound_track", "digit": digit}}
        if self.provider == "plivo":
            return {"event": "dtmf", "streamId": self.sid, "dtmf": {"digit": digit, "track": "inbound"}}
        return {"event": "dtmf", "sequence_number": self._n(), "stream_sid": self.sid,
                "dtmf": {"digit": digit, "duration": "80"}}

    def mark(self, name: str) -> dict:
        if self.provider == "twilio":
            return {"event": "mark", "sequenceNumber": self._n(), "streamSid": self.sid, "mark": {"name": name}}
        if self.provider == "plivo":
            return {"event": "playedStream", "streamId": self.sid, "name": name}
        return {"event": "mark", "sequence_number": self._n(), "stream_sid": self.sid, "mark": {"name": name}}

    def clear_ack(self) -> dict | None:
        if self.provider == "plivo":
            return {"event": "clearedAudio", "sequenceNumber": 0, "streamId": self.sid}
        return None

    def stop(self) -> dict | None:
        if self.provider == "twilio":
            return {"event": "stop", "sequenceNumber": self._n(), "streamSid": self.sid,
                    "stop": {"accountSid": "AC1", "callSid": self.call}}
        if self.provider == "exotel":
            return {"event": "stop", "sequence_number": self._n(), "stream_sid": self.sid,
                    "stop": {"call_sid": self.call, "account_sid": "AC1", "reason": "callended"}}
        return None   # Plivo just closes the socket

    def parse(self, wire: str) -> tuple[str, str | None]:
        """What the provider understands from one of our messages; asserts its exact shape."""
        msg = json.loads(wire)
        key = {"twilio": "streamSid", "plivo": "streamId", "exotel": "stream_sid"}[self.provider]
        assert msg.pop(key) == self.sid
        event = msg.pop("event")
        if self.provider == "plivo":
            if event == "playAudio":
                media = msg.pop("media")
                assert media.pop("contentType") == "audio/x-mulaw" and media.pop("sampleRate") == 8000
                assert not msg and set(media) == {"payload"}
                return "media", media["payload"]
            if event == "checkpoint":
                assert set(msg) == {"name"}
                return "mark", msg["name"]
            assert event == "clearAudio" and not msg
            return "clear", None
        if event == "media":
            assert set(msg) == {"media"} and set(msg["media"]) == {"payload"}
            return "media", msg["media"]["payload"]
        if event == "mark":
            assert set(msg) == {"mark"} and set(msg["mark"]) == {"name"}
            return "mark", msg["mark"]["name"]
        assert event == "clear" and not msg
        return "clear", None


def dumps(msg: dict) -> str:
    return json.dumps(msg, separators=(",", ":"))


def started(provider: str, params: dict[str, str] | None = None) -> tuple[Any, Player]:
    conn, player = CODECS[provider](), Player(provider)
    hello = player.connected()
    if hello is not None:
        conn.receive(dumps(hello))
    events = conn.receive(dumps(player.start(params or {"token": "t"})))
    assert type(events[0]) is StreamStarted, events
    return conn, player


def payload_for(provider: str, seed: int = 0) -> str:
    """A legal outbound payload: Exotel needs 3.2 KB chunks of 320-byte frames."""
    size = 3200 if provider == "exotel" else 160
    return base64.b64encode(bytes([seed % 256]) * size).decode()


# -- golden transcripts ------------------------------------------------------------------------

def as_golden(event: Any) -> list:
    return [type(event).__name__, msgspec.json.decode(msgspec.json.encode(event))]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_golden_session(provider):
    lines = [json.loads(line) for line in (GOLDEN / f"{provider}_session.jsonl").read_text().splitlines()]
    assert len(lines) > 10
    conn = CODECS[provider]()
    outbound = {"SendMedia": SendMedia, "SendMark": SendMark, "SendClear": SendClear}
    for number, line in enumerate(lines, 1):
        where = f"{provider} line {number}"
        if "recv" in line:
            got = [as_golden(e) for e in conn.receive(dumps(line["recv"]))]
            assert got == line["events"], where
        elif "send" in line:
            name, fields = line["send"]
            assert json.loads(conn.send(outbound[name](**fields))) == line["wire"], where
        elif "clear" in line:
            wire, dropped = conn.clear()
            assert json.loads(wire) == line["wire"], where
            assert [as_golden(e) for e in dropped] == line["cleared"], where
        else:
            assert [as_golden(e) for e in conn.receive(None)] == line["events"], where
        assert conn.state.value == line["state"], where


@pytest.mark.parametrize("provider", PROVIDERS)
def test_golden_session_batched_gives_the_same_events(provider):
    """Inbound messages of a golden session fed as one batch give the same events."""
    lines = [json.loads(line) for line in (GOLDEN / f"{provider}_session.jsonl").read_text().splitlines()]
    inbound = [dumps(line["recv"]) for line in lines if "recv" in line and line["recv"]["event"] != "mark"
               and line["recv"]["event"] != "playedStream"]
    one_by_one = CODECS[provider]()
    expected = [e for m in inbound for e in one_by_one.receive(m)]
    assert CODECS[provider]().receive_many(inbound) == expected
    assert any(type(e) is MediaReceived for e in expected)


# -- player round trip with a mark/clear model --------------------------------------------------

OPS = st.lists(st.one_of(
    st.tuples(st.just("in_media"), st.binary(min_size=1, max_size=40)),
    st.tuples(st.just("in_dtmf"), st.sampled_from(sorted(ev.DTMF_DIGITS))),
    st.tuples(st.just("out_media"), st.integers(0, 255)),
    st.tuples(st.just("out_mark"), st.sampled_from(["a", "b", "c", "mark with spaces", "ünï"])),
    st.tuples(st.just("play"), st.integers(1, 3)),
    st.tuples(st.just("deliver"), st.integers(1, 4)),
    st.tuples(st.just("clear"), st.none()),
), max_size=24)


def run_model(provider: str, ops: list, *, unique_marks: bool) -> None:
    """Both sides of a call. The provider side queues our marks and plays them in order
    (``play``), echoes or acks clears as its docs say, and delivers its messages to the codec in
    FIFO order whenever ``deliver`` says. Checks every message both ways and that each mark is
    reported to the agent exactly once: played iff its echo reached us before we cleared it."""
    conn, player = started(provider)
    outbox: list[tuple[str, tuple[int, str] | None]] = []  # provider -> us: (message, mark echoed)
    queued: list[tuple[int, str]] = []      # marks the provider holds: (instance, name)
    unreported: list[tuple[int, str]] = []  # marks sent that the agent has not heard of yet
    expected_marks: list[MarkPlayed] = []
    expected_inbound: list[Any] = []
    got: list[Any] = []

    def deliver(count: int) -> None:
        for _ in range(min(count, len(outbox))):
            message, echoed = outbox.pop(0)
            if echoed is not None and echoed in unreported:
                unreported.remove(echoed)
                expected_marks.append(MarkPlayed(echoed[1]))
            got.extend(conn.receive(message))

    for number, (op, arg) in enumerate(ops):
        if op == "in_media":
            payload = base64.b64encode(arg).decode()
            outbox.append((dumps(player.media(payload, number, 20 * number)), None))
            expected_inbound.append(("media", payload, number, 20 * number))
        elif op == "in_dtmf":
            outbox.append((dumps(player.dtmf(arg)), None))
            expected_inbound.append(("dtmf", arg))
        elif op == "out_media":
            payload = payload_for(provider, arg)
            assert player.parse(conn.send(SendMedia(payload))) == ("media", payload)
        elif op == "out_mark":
            mark = (number, f"{arg}-{number}" if unique_marks else arg)
            assert player.parse(conn.send(SendMark(mark[1]))) == ("mark", mark[1])
            queued.append(mark)
            unreported.append(mark)
        elif op == "play":
            outbox.extend((dumps(player.mark(m[1])), m) for m in queued[:arg])
            del queued[:arg]
        elif op == "deliver":
            deliver(arg)
        else:  # clear
            wire, dropped = conn.clear()
            assert player.parse(wire) == ("clear", None)
            got.extend(dropped)
            expected_marks.extend(MarkPlayed(name, cleared=True) for _, name in unreported)
            unreported.clear()
            if provider == "twilio":   # §1.4: every pending mark is echoed at once
                outbox.extend((dumps(player.mark(m[1])), m) for m in queued)
            ack = player.clear_ack()
            if ack is not None:
                outbox.append((dumps(ack), None))
            queued.clear()
    deliver(len(outbox))
    stop = player.stop()
    if stop is not None:
        got.extend(conn.receive(dumps(stop)))
    got.extend(conn.receive(None))

    assert [e for e in got if type(e) is MarkPlayed] == expected_marks
    inbound = [("media", e.payload, e.chunk, e.timestamp) if type(e) is MediaReceived
               else ("dtmf", e.digit) for e in got if type(e) in (MediaReceived, DtmfReceived)]
    assert inbound == expected_inbound
    assert not [e for e in got if type(e) is ProtocolErrorEvent]
    assert type(got[-1]) is StreamClosed and conn.state is State.STOPPED
    if provider == "plivo":
        assert sum(type(e) is AudioCleared for e in got) == sum(op == "clear" for op, _ in ops)


@FUZZ
@given(ops=OPS)
def test_round_trip_through_a_provider_player(ops):
    for provider in PROVIDERS:
        # Exotel does not document what happens to marks on clear: unique names are the contract
        # there; Twilio and Plivo must cope with an agent reusing names.
        run_model(provider, ops, unique_marks=provider == "exotel")


# -- the state table, walked --------------------------------------------------------------------

def conn_in(provider: str, state: State) -> tuple[Any, Player]:
    if state is State.CONNECTED:
        return CODECS[provider](), Player(provider)
    conn, player = started(provider)
    if state is State.STREAMING:
        conn.receive(dumps(player.media("AAAA", 1, 0)))
    elif state is State.STOPPED:
        conn.receive(dumps({"event": "stop", "streamSid": player.sid, "streamId": player.sid,
                            "stream_sid": player.sid}))
    elif state is State.ERROR:
        conn.receive("{not json")
    assert conn.state is state
    return conn, player


def input_message(player: Player, inp: _state.Input) -> str | None:
    msg = {
        _state.Input.CONNECTED: player.connected(),
        _state.Input.START: player.start({}),
        _state.Input.MEDIA: player.media("AAAA", 1, 0),
        _state.Input.DTMF: player.dtmf("7"),
        _state.Input.MARK: player.mark("m"),
        _state.Input.CLEARED: player.clear_ack(),
        _state.Input.STOP: {"event": "stop", "streamSid": player.sid, "streamId": player.sid,
                            "stream_sid": player.sid},
    }.get(inp)
    return None if msg is None else dumps(msg)


PAIRS = [(p, i) for p in PROVIDERS for i in _state.Input
         if i is not _state.Input.CLOSE and input_message(Player(p), i) is not None]


@pytest.mark.parametrize("provider,inp", PAIRS)
@pytest.mark.parametrize("state", list(State))
def test_state_table_receive(provider, state, inp):
    conn, player = conn_in(provider, state)
    message = input_message(player, inp)
    events = conn.receive(message)
    if state is State.ERROR:
        assert events == [] and conn.state is State.ERROR
        return
    allowed = _state.RECEIVE.get((state, inp))
    if allowed is None:
        assert events == [ProtocolErrorEvent(_state.out_of_state_code(state, inp), events[0].reason)]
        assert conn.state is State.ERROR
    else:
        assert conn.state is allowed
        assert not [e for e in events if type(e) is ProtocolErrorEvent]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("state", list(State))
def test_state_table_close_and_send(provider, state):
    for out, event in ((_state.Output.MEDIA, SendMedia(payload_for(provider))),
                       (_state.Output.MARK, SendMark("m")), (_state.Output.CLEAR, SendClear())):
        conn, _ = conn_in(provider, state)
        if (state, out) in _state.SEND:
            assert isinstance(conn.send(event), str) and conn.state is _state.SEND[(state, out)]
        else:
            with pytest.raises(LocalProtocolError):
                conn.send(event)
    conn, _ = conn_in(provider, state)
    events = conn.receive(None)
    assert type(events[-1]) is StreamClosed
    assert conn.state is _state.RECEIVE[(state, _state.Input.CLOSE)]
    assert conn.receive(None) == []
    with pytest.raises(LocalProtocolError):
        conn.receive("{}")
    with pytest.raises(LocalProtocolError):
        conn.send(SendClear())


def test_state_table_is_consistent():
    # ERROR is absorbing; every other state can be closed; nothing leaves STOPPED but CLOSE.
    assert all(nxt is State.ERROR for (s, _), nxt in _state.RECEIVE.items() if s is State.ERROR)
    assert all((s, _state.Input.CLOSE) in _state.RECEIVE for s in State)
    assert [i for (s, i) in _state.RECEIVE if s is State.STOPPED] == [_state.Input.CLOSE]
    assert all(s in (State.STARTED, State.STREAMING) for s, _ in _state.SEND)
    assert _state.to_dot().count("->") == len(_state.RECEIVE)


# -- specific peer errors -----------------------------------------------------------------------

@pytest.mark.parametrize("provider", PROVIDERS)
def test_second_start_is_a_policy_violation(provider):
    conn, player = started(provider)
    [event] = conn.receive(dumps(player.start({})))
    assert (event.code, event.fatal, conn.state) == (1008, True, State.ERROR)
    assert conn.receive(dumps(player.media("AAAA", 1, 0))) == []


@pytest.mark.parametrize("provider", PROVIDERS)
def test_media_before_start_is_a_protocol_error(provider):
    conn, player = CODECS[provider](), Player(provider)
    [event] = conn.receive(dumps(player.media("AAAA", 1, 0)))
    assert event.code == 1002 and "media" in event.reason


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("message,code", [
    ("x" * (64 * 1024 + 1), 1009),
    ("é" * (33 * 1024), 1009),              # 66 KiB of UTF-8 in 33 Ki characters
    (b'{"event":"media\xff"}', 1007),
    ("{\"event\":", 1007),
    ("[1, 2]", 1003),
    ("42", 1003),
    ('{"no_event": 1}', 1003),
    ('{"event": 7}', 1003),
    ('{"event":"start"}', 1007),
    ('{"event":"start","start":[]}', 1007),
])
def test_garbage_is_a_fatal_protocol_error(provider, message, code):
    conn, _ = CODECS[provider](), Player(provider)
    [event] = conn.receive(message)
    assert (event.code, event.fatal) == (code, True) and conn.state is State.ERROR
    assert len(event.reason.encode()) <= ev.MAX_REASON_BYTES


@pytest.mark.parametrize("provider", PROVIDERS)
def test_bad_fields_after_start(provider):
    for bad in (
        lambda p: {**p.media("AAAA", 1, 0), "media": {"payload": 5}},
        lambda p: {**p.media("AAAA", 1, 0), "media": "AAAA"},
        lambda p: {**p.dtmf("X")},
        lambda p: {**p.media("AAAA", -1, 0)},
        lambda p: {**p.media("AAAA", 1, 0), "media": {"payload": "AA", "chunk": "one"}},
    ):
        conn, player = started(provider)
        [event] = conn.receive(dumps(bad(player)))
        assert (event.code, event.fatal) == (1007, True), event


@pytest.mark.parametrize("provider", PROVIDERS)
def test_other_stream_id_is_rejected(provider):
    conn, player = started(provider)
    other = Player(provider, stream_id="MZ-someone-else")
    [event] = conn.receive(dumps(other.media("AAAA", 1, 0)))
    assert event.code == 1008


@pytest.mark.parametrize("provider", PROVIDERS)
def test_unknown_event_is_reported_but_not_fatal(provider):
    conn, player = started(provider)
    [event] = conn.receive('{"event":"somethingNew","x":1}')
    assert (event.code, event.fatal) == (1003, False) and conn.state is State.STARTED
    assert type(conn.receive(dumps(player.media("AAAA", 1, 0)))[0]) is MediaReceived


@pytest.mark.parametrize("provider", PROVIDERS)
def test_reasons_never_echo_payloads(provider):
    secret = "SECRET" * 40
    conn, player = started(provider)
    for message in (
        '{"event":"' + secret + '"}',
        dumps({**player.dtmf(secret)}),
        dumps({**player.media("AAAA", 1, 0), "media": {"payload": secret, "chunk": secret}}),
    ):
        conn2, player2 = started(provider)
        for event in conn2.receive(message):
            assert secret not in event.reason and len(event.reason.encode()) <= ev.MAX_REASON_BYTES


def test_to_canonical_for_every_digit_and_mark():
    from gateway.protocols import canonical, to_canonical
    for digit in ev.DTMF_DIGITS:
        assert canonical.decode(canonical.encode(to_canonical(DtmfReceived(digit)))) == canonical.Dtmf(digit=digit)
    assert to_canonical(MarkPlayed("m", cleared=True)) == canonical.Mark(name="m", cleared=True)
    assert to_canonical(StreamStopped()) is None and to_canonical(AudioCleared()) is None


def test_reprs_keep_tokens_and_audio_out_of_logs():
    conn, player = started("twilio", {"stream_token": "TOKEN-VALUE-123"})
    text = repr(conn.stream) + repr(conn.receive(dumps(player.media("QUFBQUFB" * 20, 1, 0))))
    assert "TOKEN-VALUE-123" not in text and "QUFBQUFB" not in text and "stream_token" in text
    assert "QUFB" not in repr(SendMedia("QUFBQUFB"))


# -- provider specifics -------------------------------------------------------------------------

def test_twilio_clear_reports_pending_marks_once_and_swallows_the_echoes():
    conn, player = started("twilio")
    conn.send(SendMark("a"))
    conn.send(SendMark("b"))
    assert conn.receive(dumps(player.mark("a"))) == [MarkPlayed("a")]
    wire, dropped = conn.clear()
    assert json.loads(wire) == {"event": "clear", "streamSid": player.sid}
    assert dropped == [MarkPlayed("b", cleared=True)]
    conn.send(SendMark("b"))                            # the agent reuses the name
    assert conn.receive(dumps(player.mark("b"))) == []  # Twilio's echo of the cleared one
    assert conn.receive(dumps(player.mark("b"))) == [MarkPlayed("b")]
    assert conn.receive(dumps(player.mark("zzz"))) == []  # never sent: ignored
    assert conn.pending_marks == ()


def test_send_clear_without_clear_helper_reports_dropped_marks_on_next_receive():
    conn, player = started("plivo")
    conn.send(SendMark("x"))
    assert json.loads(conn.send(SendClear()))["event"] == "clearAudio"
    assert conn.receive(dumps(player.clear_ack())) == [MarkPlayed("x", cleared=True), AudioCleared()]


def test_plivo_in_flight_echo_before_clear_ack_is_swallowed():
    conn, player = started("plivo")
    conn.send(SendMark("g"))
    _, dropped = conn.clear()
    assert dropped == [MarkPlayed("g", cleared=True)]
    conn.send(SendMark("g"))
    assert conn.receive(dumps(player.mark("g"))) == []          # played before Plivo saw the clear
    assert conn.receive(dumps(player.clear_ack())) == [AudioCleared()]
    assert conn.receive(dumps(player.mark("g"))) == [MarkPlayed("g")]


@pytest.mark.parametrize("raw,expected", [
    ("tenant=acme;callToken=abc123", {"tenant": "acme", "callToken": "abc123"}),
    ("userId=12345,sessionId=abc", {"userId": "12345", "sessionId": "abc"}),
    ('{"a": "1", "b": 2, "c": {"x": 1}}', {"a": "1", "b": "2"}),
    ({"a": "1", "b": True}, {"a": "1", "b": "true"}),
    ("", {}),
    (None, {}),
    ("novalue;=x;k=", {"k": ""}),
])
def test_plivo_extra_headers(raw, expected):
    assert parse_extra_headers(raw) == expected


def test_plivo_start_formats_and_play_format():
    conn = PlivoConnection(play_format=ev.MediaFormat("l16", 16000))
    start = Player("plivo").start({"k": "v"})
    start["start"]["mediaFormat"] = {"encoding": "audio/x-l16;rate=16000", "sampleRate": "16000"}
    [event] = conn.receive(dumps(start))
    assert event.media_format == ev.MediaFormat("l16", 16000)
    assert conn.outbound_format == ev.MediaFormat("l16", 16000)
    media = json.loads(conn.send(SendMedia("AAAA")))["media"]
    assert (media["contentType"], media["sampleRate"]) == ("audio/x-l16", 16000)
    del start["start"]["mediaFormat"]
    [event] = PlivoConnection().receive(dumps(start))
    assert event.media_format == ev.MediaFormat("mulaw", 8000)
    start["start"]["mediaFormat"] = {"encoding": "audio/x-opus", "sampleRate": 48000}
    [event] = PlivoConnection().receive(dumps(start))
    assert event.code == 1007 and "encoding" in event.reason


def test_exotel_tolerates_camel_case_and_missing_media_format():
    conn = ExotelConnection(default_format=ev.MediaFormat("l16", 16000))
    [event] = conn.receive(dumps({"event": "start", "sequence_number": 1, "start": {
        "streamSid": "S1", "callSid": "C1", "accountSid": "A1", "custom_parameters": {"n": 1}}}))
    assert (event.stream_id, event.call_id, event.account_id) == ("S1", "C1", "A1")
    assert event.media_format == ev.MediaFormat("l16", 16000) and event.custom_parameters == {"n": "1"}
    [event] = ExotelConnection().receive(dumps({"event": "start", "start": {"call_sid": "C1"}}))
    assert event.code == 1007


def test_exotel_send_enforces_chunk_rules():
    conn, _ = started("exotel")
    for size in (320, 3199, 3210, 100_160):
        with pytest.raises(LocalProtocolError):
            conn.send(SendMedia(base64.b64encode(bytes(size)).decode()))
    for size in (3200, 3520, 99_840):
        assert conn.send(SendMedia(base64.b64encode(bytes(size)).decode()))
    with pytest.raises(LocalProtocolError):
        conn.send(SendMedia("not base64 of the right length"))
    loose = ExotelConnection(enforce_chunk_rules=False)
    loose.receive(dumps(Player("exotel").start({})))
    assert loose.send(SendMedia("AAAA"))


AUDIO_BYTES = bytes(range(1, 256)) * 40


@FUZZ
@given(sizes=st.lists(st.integers(0, 9000), max_size=12),
       chunk=st.sampled_from([3200, 3520, 6400, 99_840]))
def test_exotel_chunker_emits_only_legal_chunks_and_loses_nothing(sizes, chunk):
    pushes = [AUDIO_BYTES[i % 255:i % 255 + size] for i, size in enumerate(sizes)]
    chunker = ExotelChunker(chunk)
    out = [c for data in pushes for c in chunker.push(data)]
    assert all(len(c) == chunk for c in out)
    tail = chunker.flush()
    if tail is not None:
        assert exotel_chunk_ok(len(tail))
        out.append(tail)
    joined, sent = b"".join(out), b"".join(pushes)
    assert joined[:len(sent)] == sent and set(joined[len(sent):]) <= {0}
    assert len(joined) - len(sent) < 3200 and chunker.buffered == 0


def test_exotel_chunker_rejects_illegal_sizes_and_resets():
    for bad in (0, 320, 3300, 100_160):
        with pytest.raises(ValueError):
            ExotelChunker(bad)
    chunker = ExotelChunker()
    chunker.push(bytes(100))
    chunker.reset()
    assert chunker.flush() is None


@pytest.mark.parametrize("provider,fmt", [
    ("twilio", ev.MediaFormat("mulaw", 8000)), ("plivo", ev.MediaFormat("mulaw", 8000)),
    ("exotel", ev.MediaFormat("l16", 8000)),
])
def test_outbound_format(provider, fmt):
    assert CODECS[provider]().outbound_format is None
    conn, _ = started(provider)
    assert conn.outbound_format == fmt


def test_twilio_drops_outbound_track_and_keeps_payload_raw():
    conn, player = started("twilio")
    msg = player.media("not-even-base64!", 1, 0)
    assert conn.receive(dumps(msg)) == [MediaReceived("not-even-base64!", msg["sequenceNumber"] and int(msg["sequenceNumber"]), 1, 0)]
    msg["media"]["track"] = "outbound"
    assert conn.receive(dumps(msg)) == []


def test_mark_bounds_and_bad_outbound_are_local_errors():
    conn, _ = started("twilio")
    for bad in (SendMark(""), SendMark("x" * 257), SendMedia(b"AAAA"), "clear"):  # type: ignore[arg-type]
        with pytest.raises(LocalProtocolError):
            conn.send(bad)
    for i in range(1024):
        conn.send(SendMark(f"m{i}"))
    with pytest.raises(LocalProtocolError):
        conn.send(SendMark("one too many"))


# -- hypothesis: garbage in, events or our protocol error out, never anything else --------------

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=8) | st.sampled_from(["", "0", "8000", "audio/x-mulaw", "MZ-stream-1", "AAAA"]),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(
        st.sampled_from(["event", "start", "media", "payload", "streamSid", "streamId", "stream_sid",
                         "sequenceNumber", "chunk", "timestamp", "dtmf", "digit", "mark", "name",
                         "stop", "mediaFormat", "media_format", "encoding", "sampleRate",
                         "customParameters", "extra_headers", "callSid", "callId", "call_sid"])
        | st.text(max_size=6), inner, max_size=3),
    max_leaves=6)
EVENT_NAMES = st.sampled_from(["connected", "start", "media", "dtmf", "mark", "stop", "playedStream",
                               "played", "clearedAudio", "muteStream", "playFailed", "zzz"])


def check_events(events: list) -> None:
    assert isinstance(events, list)
    for event in events:
        assert type(event) in INBOUND_TYPES
        if type(event) is ProtocolErrorEvent:
            assert event.code in (1002, 1003, 1007, 1008, 1009)
            assert len(event.reason.encode()) <= ev.MAX_REASON_BYTES


STARTED = {p: dumps(Player(p).start({"token": "t"})) for p in PROVIDERS}


def feed_everywhere(message: str | bytes) -> None:
    """Each codec, fresh and mid-stream, gets ``message``: only events come back."""
    for provider in PROVIDERS:
        check_events(CODECS[provider]().receive(message))
        conn = CODECS[provider]()
        conn.receive(STARTED[provider])
        check_events(conn.receive(message))
        check_events(conn.receive(message))   # also after a possible error
        check_events(conn.receive(None))


# Each property below feeds every example to all three codecs: >= 1,000 examples per codec.

@FUZZ
@given(data=st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_fuzz_arbitrary_text_and_bytes(data):
    feed_everywhere(data)


@FUZZ
@given(name=EVENT_NAMES, key=st.sampled_from(["media", "start", "dtmf", "mark", "stop", "name"]),
       value=JSONISH)
def test_fuzz_jsonish_events(name, key, value):
    """A known (or unknown) event name whose body is arbitrary JSON."""
    feed_everywhere(dumps({"event": name, key: value, "streamSid": "MZ-stream-1",
                           "streamId": "MZ-stream-1", "stream_sid": "MZ-stream-1"}))


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for key, inner in value.items():
            out.extend(_paths(inner, prefix + (key,)))
    return out


def _replace(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    copy = dict(value)
    copy[path[0]] = _replace(value[path[0]], path[1:], new)
    return copy


REAL = [m for p in PROVIDERS for m in (
    Player(p).start({"token": "t"}), Player(p).media("AAAA", 3, 40), Player(p).dtmf("9"),
    Player(p).mark("m"), Player(p).clear_ack(), Player(p).stop(), Player(p).connected()) if m]
MUTATIONS = [(real, path) for real in REAL for path in _paths(real)[1:]]


EDGE_VALUES = [None, "", " ", "0", "-1", "1e400", "\u0000", "é" * 300, 0, -1, 2**64, 1.5, float("1e308"),
               True, [], {}, [""], {"": ""}, {"event": "media"}]


def test_every_field_of_every_message_with_every_edge_value():
    """Exhaustive and deterministic: each field (at any depth) of each real message, replaced by
    each edge value or deleted, fed to every codec fresh and mid-stream."""
    for real, path in MUTATIONS:
        for new in EDGE_VALUES:
            feed_everywhere(dumps(_replace(real, path, new)))
        feed_everywhere(dumps(_delete(real, path)))


def _delete(value: Any, path: tuple) -> Any:
    copy = dict(value)
    if len(path) == 1:
        copy.pop(path[0], None)
    elif isinstance(copy.get(path[0]), dict):
        copy[path[0]] = _delete(copy[path[0]], path[1:])
    return copy


@FUZZ
@given(target=st.sampled_from(MUTATIONS), new=st.sampled_from(EDGE_VALUES) | JSONISH)
def test_fuzz_mutated_real_messages(target, new):
    """Real-shaped messages of every provider with one field (at any depth) replaced."""
    real, path = target
    feed_everywhere(dumps(_replace(real, path, new)))


@FUZZ
@given(ops=st.lists(st.sampled_from(["media", "dtmf", "mark", "garbage", "unknown"]), max_size=16),
       cuts=st.lists(st.integers(0, 20), max_size=5))
def test_batches_split_anywhere_give_the_same_events(ops, cuts):
    for provider in PROVIDERS:
        player = Player(provider)
        messages = [m for m in (player.connected(), player.start({"a": "b"})) if m is not None]
        for i, op in enumerate(ops):
            messages.append({"media": player.media("AAAA", i, 20 * i), "dtmf": player.dtmf("#"),
                             "mark": player.mark("m"), "unknown": {"event": "whatever"},
                             "garbage": {"event": "media", "media": None}}[op])
        wire = [dumps(m) for m in messages] + [None]
        one = CODECS[provider]()
        expected = [e for m in wire for e in one.receive(m)]
        bounds = sorted({0, len(wire), *[c for c in cuts if c < len(wire)]})
        batched = CODECS[provider]()
        got = [e for a, b in zip(bounds, bounds[1:]) for e in batched.receive_many(wire[a:b])]
        assert got == expected and batched.state is one.state


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("state", list(State))
def test_send_media_b64_is_send_of_send_media(provider, state):
    """The per-frame bytes path renders exactly what ``send(SendMedia(...))`` renders, in every
    state: the same message where media may be sent, the same error where it may not."""
    payload = payload_for(provider, seed=7)
    a, _ = conn_in(provider, state)
    b, _ = conn_in(provider, state)
    if (state, _state.Output.MEDIA) in _state.SEND:
        assert a.send_media_b64(payload.encode()) == b.send(SendMedia(payload)).encode()
        assert a.state is b.state
    else:
        with pytest.raises(LocalProtocolError):
            a.send_media_b64(payload.encode())
    a.receive(None)
    with pytest.raises(LocalProtocolError):
        a.send_media_b64(payload.encode())
