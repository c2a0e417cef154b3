"""Hostile JSON nesting, everywhere JSON from outside is parsed (RELIABILITY 1 and 16).

msgspec parses nested arrays/objects recursively and stops at Python's recursion limit with a
``RecursionError``, which is not a ``DecodeError``: a 30 KB frame of ``[`` (well under the 64 KiB
message limit), even inside a field the decoder skips, used to escape every codec and turn control
API bodies into 500s. The random fuzzers never build such depth, so each parser gets it here
explicitly: the codecs answer with their own protocol error, the API with a 422, the Meta webhook
parser with ``Malformed``, and a live widget session reports an error and carries on."""
from __future__ import annotations

import pytest

from control.api import create_app
from control.api.openapi import document
from control.config import Settings
from control.messaging import wire
from control.providers._http import json_or_none
from control.secrets import generate_key, parse_key
from control.store import create_api_key, open_store
from fixtures_gateway import open_session, receive_json
from gateway.protocols import canonical, events as ev, exotel, plivo, twilio
from gateway.protocols.canonical import Text

DEPTH = 30_000
SHAPES = {
    "top-level-arrays": b"[" * DEPTH,
    "top-level-objects": b'{"a":' * (DEPTH // 3),
    "in-a-known-field": b'{"type":"text","text":' + b"[" * DEPTH,
    "in-an-unknown-field": b'{"type":"text","zzz":' + b"[" * DEPTH,
    "provider-media": b'{"event":"media","media":' + b"[" * DEPTH,
    "provider-unknown-field": b'{"event":"media","zzz":' + b"[" * DEPTH,
    "provider-start-params": b'{"event":"start","start":{"customParameters":' + b"[" * DEPTH,
}
CODECS = {"twilio": twilio.TwilioConnection, "plivo": plivo.PlivoConnection,
          "exotel": exotel.ExotelConnection}


@pytest.mark.parametrize("shape", SHAPES)
def test_canonical_codec_answers_protocol_error(shape):
    for sender in (None, "caller", "agent"):
        with pytest.raises(canonical.ProtocolError) as info:
            canonical.decode(SHAPES[shape], sender=sender)
        assert info.value.code in ("malformed_json", "not_an_object", "invalid_field")
        assert len(SHAPES[shape]) < canonical.MAX_MESSAGE_BYTES     # not just "too large"


@pytest.mark.parametrize("provider", CODECS)
@pytest.mark.parametrize("shape", SHAPES)
def test_provider_codecs_answer_protocol_error_events(provider, shape):
    for text in (False, True):
        message = SHAPES[shape].decode() if text else SHAPES[shape]
        events = CODECS[provider]().receive(message)
        assert events and all(type(e) is ev.ProtocolErrorEvent for e in events), events
        assert events[0].code in (1002, 1003, 1007, 1008)


async def test_live_widget_session_reports_and_carries_on(gateway):
    ws = await open_session(gateway)
    await ws.send_text(SHAPES["in-a-known-field"])
    assert (await receive_json(ws, "error")).code == "malformed_json"
    await ws.send_text(canonical.encode(Text(text="still here")))
    assert (await receive_json(ws, "transcript")).text == "You said: still here"
    await ws.aclose()


@pytest.mark.parametrize("shape", ["top-level-arrays", "top-level-objects",
                                   "in-an-unknown-field"])
def test_meta_webhook_parser_says_malformed(shape):
    body = SHAPES[shape].replace(b'"type":"text"', b'"object":"whatsapp_business_account"')
    with pytest.raises(wire.Malformed):
        wire.parse_meta(body, "1")


def test_provider_answer_parser_gives_none():
    for body in SHAPES.values():
        assert json_or_none(body.decode()) is None


async def test_every_api_operation_with_a_body_answers_4xx(tmp_path):
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'c.db'}",
                        secret_key=parse_key(generate_key()), public_url="https://pub.example")
    store = open_store(settings)
    try:
        _, key = store.run_sync(create_api_key, "k")
        client = create_app(settings, store).test_client()
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        ids = {"agent_id": "ag_x", "flow_id": "fl_x", "channel_id": "ch_x", "key_id": "key_x",
               "message_id": "m_x", "provider": "twilio"}
        checked = 0
        for path, ops in document()["paths"].items():
            for method, op in ops.items():
                if "requestBody" not in op or not op.get("security"):
                    continue
                url = path.format(**ids)
                for shape in ("top-level-arrays", "in-an-unknown-field"):
                    r = await client.open(url, method=method.upper(), headers=headers,
                                          data=SHAPES[shape])
                    assert 400 <= r.status_code < 500, (method, path, shape, r.status_code)
                    checked += 1
        assert checked >= 8
    finally:
        store.close()
