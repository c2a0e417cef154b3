"""The canonical (widget/agent) protocol: decode, encode, bounds, directions, never-crash."""
from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.protocols import canonical as c

FUZZ = settings(max_examples=1000, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
CODES = {"malformed_json", "too_large", "not_an_object", "unknown_type", "invalid_field", "not_allowed"}


@pytest.mark.parametrize("wire,event", [
    ('{"type":"text","text":"Hello"}', c.Text(text="Hello")),
    ('{"type":"transcript","role":"assistant","text":"Hi there"}',
     c.Transcript(role="assistant", text="Hi there")),
    ('{"type":"transcript","role":"user","text":"hel","final":false}',
     c.Transcript(role="user", text="hel", final=False)),
    ('{"type":"dtmf","digit":"#"}', c.Dtmf(digit="#")),
    ('{"type":"clear"}', c.Clear()),
    ('{"type":"mark","name":"utt-1"}', c.Mark(name="utt-1")),
    ('{"type":"mark","name":"utt-1","cleared":true}', c.Mark(name="utt-1", cleared=True)),
    ('{"type":"end","reason":"hangup"}', c.End(reason="hangup")),
    ('{"type":"error","code":"agent_unreachable","message":"connect failed"}',
     c.Error(code="agent_unreachable", message="connect failed")),
])
def test_each_type_decodes_and_encodes_exactly(wire, event):
    assert c.decode(wire) == event
    assert c.decode(wire.encode()) == event
    assert c.encode(event) == wire.encode()


def test_start_carries_session_caller_variables_and_audio():
    wire = json.dumps({"type": "start", "session_id": "s-1", "channel_id": "ch-1",
                       "channel_type": "voice", "caller": {"number": "+14155550100", "name": None},
                       "variables": {"lang": "en", "n": [1, 2]},
                       "audio": {"in_rate": 16000, "out_rate": 24000, "encoding": "pcm16"}})
    start = c.decode(wire)
    assert start.caller == c.Caller(number="+14155550100")
    assert start.variables == {"lang": "en", "n": [1, 2]} and start.audio == c.AudioSpec()
    # Every start field is rendered (agents should not need to know our defaults).
    again = json.loads(c.encode(c.Start(session_id="s", channel_id="c", channel_type="web")))
    assert again == {"type": "start", "session_id": "s", "channel_id": "c", "channel_type": "web",
                     "caller": None, "variables": {},
                     "audio": {"in_rate": 16000, "out_rate": 24000, "encoding": "pcm16"}}


def test_unknown_fields_are_ignored():
    assert c.decode('{"type":"text","text":"x","lang":"en"}') == c.Text(text="x")


@pytest.mark.parametrize("wire,code", [
    ("{nope", "malformed_json"),
    (b'{"type":"text","text":"\xff"}', "malformed_json"),
    ("", "malformed_json"),
    ("[1]", "not_an_object"),
    ('"text"', "not_an_object"),
    ('{"text":"no type"}', "not_an_object"),
    ('{"type":5}', "not_an_object"),
    ('{"type":"shout"}', "unknown_type"),
    ('{"type":"text"}', "invalid_field"),
    ('{"type":"text","text":5}', "invalid_field"),
    ('{"type":"transcript","role":"robot","text":"x"}', "invalid_field"),
    ('{"type":"dtmf","digit":"55"}', "invalid_field"),
    ('{"type":"dtmf","digit":"e"}', "invalid_field"),
    ('{"type":"mark","name":""}', "invalid_field"),
    ('{"type":"mark","name":"m","cleared":"yes"}', "invalid_field"),
    ('{"type":"start","session_id":"s"}', "invalid_field"),
])
def test_bad_frames_raise_protocol_error_naming_the_problem(wire, code):
    with pytest.raises(c.ProtocolError) as info:
        c.decode(wire)
    assert info.value.code == code
    event = info.value.to_event()
    assert json.loads(c.encode(event)) == {"type": "error", "code": code, "message": info.value.message}


def test_bounds():
    assert c.decode(json.dumps({"type": "text", "text": "é" * 4096}))
    with pytest.raises(c.ProtocolError) as info:
        c.decode(json.dumps({"type": "text", "text": "x" * 4097}))
    assert info.value.code == "invalid_field"
    with pytest.raises(c.ProtocolError) as info:
        c.decode(json.dumps({"type": "mark", "name": "m" * 257}))
    assert info.value.code == "invalid_field"
    big = json.dumps({"type": "start", "session_id": "s", "channel_id": "c", "channel_type": "web",
                      "variables": {"blob": "x" * (64 * 1024)}})
    with pytest.raises(c.ProtocolError) as info:
        c.decode(big)
    assert info.value.code == "too_large"
    with pytest.raises(c.ProtocolError) as info:    # 3-byte characters: over 64 KiB as UTF-8
        c.decode('{"type":"text","text":"' + "€" * 22000 + '"}')
    assert info.value.code == "too_large"


def test_error_messages_do_not_echo_payloads():
    secret = "SECRET-" * 50
    for wire in ('{"type":"' + secret + '"}', '{"type":"dtmf","digit":"' + secret + '"}',
                 '{"type":"text","text":"' + secret * 20 + '"}', secret):
        with pytest.raises(c.ProtocolError) as info:
            c.decode(wire)
        assert secret not in info.value.message and len(info.value.message) <= 200


@pytest.mark.parametrize("sender,allowed", [
    ("caller", {"text", "dtmf", "mark", "end"}),
    ("agent", {"transcript", "clear", "mark", "end", "error"}),
])
def test_direction_rules(sender, allowed):
    samples = {
        "text": '{"type":"text","text":"x"}', "transcript": '{"type":"transcript","role":"assistant","text":"x"}',
        "dtmf": '{"type":"dtmf","digit":"1"}', "clear": '{"type":"clear"}',
        "mark": '{"type":"mark","name":"m"}', "end": '{"type":"end"}',
        "error": '{"type":"error","code":"x"}',
        "start": '{"type":"start","session_id":"s","channel_id":"c","channel_type":"web"}',
    }
    for kind, wire in samples.items():
        if kind in allowed:
            assert c.decode(wire, sender=sender)
        else:
            with pytest.raises(c.ProtocolError) as info:
                c.decode(wire, sender=sender)
            assert info.value.code == "not_allowed" and kind in info.value.message
        assert c.decode(wire)   # without a sender, every type is accepted


def test_audio_frames_must_be_pcm16():
    c.check_audio_frame(b"\x00" * 640)
    c.check_audio_frame(b"")
    with pytest.raises(c.ProtocolError) as info:
        c.check_audio_frame(b"\x00" * 641)
    assert info.value.code == "odd_audio_length"


# -- hypothesis ---------------------------------------------------------------------------------

TEXT = st.text(max_size=40)
EVENTS = st.one_of(
    st.builds(c.Text, text=TEXT),
    st.builds(c.Transcript, role=st.sampled_from(["assistant", "user"]), text=TEXT, final=st.booleans()),
    st.builds(c.Dtmf, digit=st.sampled_from(list("0123456789*#ABCD"))),
    st.just(c.Clear()),
    st.builds(c.Mark, name=st.text(min_size=1, max_size=20), cleared=st.booleans()),
    st.builds(c.Start, session_id=st.text(min_size=1, max_size=10), channel_id=st.text(min_size=1, max_size=10),
              channel_type=st.sampled_from(["web", "voice", "sms", "whatsapp"]),
              caller=st.none() | st.builds(c.Caller, number=st.none() | TEXT, name=st.none() | TEXT),
              variables=st.dictionaries(st.text(max_size=5), st.integers() | TEXT | st.none(), max_size=3)),
    st.builds(c.End, reason=TEXT),
    st.builds(c.Error, code=st.text(max_size=10), message=TEXT),
)


@FUZZ
@given(event=EVENTS)
def test_encode_decode_round_trip(event):
    assert c.decode(c.encode(event)) == event


def _decodes_or_protocol_error(data) -> None:
    for sender in (None, "caller", "agent"):
        try:
            event = c.decode(data, sender=sender)
        except c.ProtocolError as exc:
            assert exc.code in CODES and len(exc.message) <= 200
        else:
            assert type(event) in c.ALL_TYPES


@FUZZ
@given(data=st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_fuzz_arbitrary_text_and_bytes(data):
    _decodes_or_protocol_error(data)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=8)
    | st.sampled_from(["0", "#", "assistant", "user", "pcm16"]),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(
        st.sampled_from(["type", "text", "role", "final", "digit", "name", "cleared", "session_id",
                         "channel_id", "channel_type", "caller", "variables", "audio", "in_rate",
                         "reason", "code", "message", "number"]) | st.text(max_size=5), inner, max_size=3),
    max_leaves=6)


@FUZZ
@given(kind=st.sampled_from([cls.__struct_config__.tag for cls in c.ALL_TYPES] + ["zzz"]),
       fields=st.dictionaries(st.sampled_from(["text", "role", "final", "digit", "name", "cleared",
                                               "session_id", "channel_id", "channel_type", "caller",
                                               "variables", "audio", "reason", "code", "message"]),
                              JSONISH, max_size=3))
def test_fuzz_jsonish_messages(kind, fields):
    _decodes_or_protocol_error(json.dumps({"type": kind, **fields}))
    _decodes_or_protocol_error(msgspec.json.encode(fields))


EDGE_VALUES = [None, "", "0", "#", "é" * 5000, 0, -1, 2**64, 1.5, True, [], {}, {"number": 5}]
SAMPLES = [
    {"type": "text", "text": "x"}, {"type": "transcript", "role": "user", "text": "x", "final": True},
    {"type": "dtmf", "digit": "1"}, {"type": "clear"}, {"type": "mark", "name": "m", "cleared": False},
    {"type": "end", "reason": "bye"}, {"type": "error", "code": "c", "message": "m"},
    {"type": "start", "session_id": "s", "channel_id": "c", "channel_type": "web",
     "caller": {"number": "+1", "name": "n"}, "variables": {"k": "v"},
     "audio": {"in_rate": 16000, "out_rate": 24000, "encoding": "pcm16"}},
]


def test_every_field_with_every_edge_value_or_missing():
    for sample in SAMPLES:
        for key in sample:
            for new in EDGE_VALUES:
                _decodes_or_protocol_error(json.dumps({**sample, key: new}))
            _decodes_or_protocol_error(json.dumps({k: v for k, v in sample.items() if k != key}))
            if isinstance(sample[key], dict):
                for inner in sample[key]:
                    for new in EDGE_VALUES:
                        _decodes_or_protocol_error(json.dumps({**sample, key: {**sample[key], inner: new}}))
