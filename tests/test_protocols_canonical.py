"""The canonical (widget/agent) protocol: decode, encode, bounds, directions, never-crash."""
import pytest

from gateway.protocols import canonical as c


def test_text_round_trip():
    event = c.decode('{"type":"text","text":"Hello"}')
    assert event == c.Text(text="Hello")
    assert c.encode(event) == b'{"type":"text","text":"Hello"}'


def test_unknown_type_is_a_protocol_error():
    with pytest.raises(c.ProtocolError) as info:
        c.decode('{"type":"nope"}')
    assert info.value.code == "unknown_type"
