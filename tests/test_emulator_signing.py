"""The emulators sign webhooks as the providers do: our independent implementations reproduce the
documented vectors (protocols.md 2.1, 3.5, 5.2) and the SDK validators accept what they produce."""
from __future__ import annotations

import hashlib
import hmac
import json

from plivo.utils.signature_v3 import validate_v3_signature
from twilio.request_validator import RequestValidator

from emulators.signing import meta_signature, plivo_v3_signature, twilio_signature

PUBLIC = "https://converse.example.test/api/v1/webhooks/{}/ch_1"


def test_documented_vectors():
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234",
              "From": "+12349013030", "To": "+18005551212"}
    assert twilio_signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2",
                            params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert plivo_v3_signature("tok", "https://ex.com/answer", "nonce1",
                              {"CallUUID": "abc", "From": "123"}) == (
        "W5brT1cKSS7FsqlrD5Q8wgDOcSAcz/zMYXxUPdU6XCY=")
    assert meta_signature("secret", b"test") == (
        "sha256=0329a06b62cd16b33eb6792be8c60b158d89a2ee3a876fce9a881ebb488c0914")
    assert meta_signature("secret", b'{"object":"whatsapp_business_account","entry":[]}') == (
        "sha256=56a21e195072d3c07ec2bbf608e0dfeaf322e1917ec30f0cb399c2a43588216e")


def test_twilio_webhooks_validate_with_the_sdk(twilio_emulator):
    url = PUBLIC.format("twilio")
    validator = RequestValidator(twilio_emulator.auth_token)
    for params, headers in (twilio_emulator.voice_webhook(url),
                            twilio_emulator.sms_webhook(url, body="héllo & bye")):
        assert validator.validate(url, params, headers["X-Twilio-Signature"])
        assert not validator.validate(url + "x", params, headers["X-Twilio-Signature"])
    params, headers = twilio_emulator.sms_webhook(url, body="a", message_sid="SM" + "1" * 32)
    assert params["MessageSid"] == "SM" + "1" * 32


def test_plivo_answer_validates_with_the_sdk(plivo_emulator):
    url = PUBLIC.format("plivo")
    params, headers = plivo_emulator.answer_webhook(url)
    assert validate_v3_signature("POST", url, headers["X-Plivo-Signature-V3-Nonce"],
                                 plivo_emulator.auth_token, headers["X-Plivo-Signature-V3"],
                                 dict(params))
    assert not validate_v3_signature("POST", url, "other-nonce", plivo_emulator.auth_token,
                                     headers["X-Plivo-Signature-V3"], dict(params))


def test_meta_deliveries_sign_the_raw_escaped_bytes(meta_emulator):
    payload, wamid = meta_emulator.inbound_text("Grüße @ home")
    body, headers = meta_emulator.signed(payload)
    assert b"\\u00fc" in body                        # Meta signs the escaped form
    expected = hmac.new(meta_emulator.app_secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Hub-Signature-256"] == "sha256=" + expected
    value = json.loads(body)["entry"][0]["changes"][0]["value"]
    assert value["messages"][0]["id"] == wamid and value["messages"][0]["text"]["body"] == (
        "Grüße @ home")
    assert value["metadata"]["phone_number_id"] == meta_emulator.phone_number_id
    status = meta_emulator.status_update(wamid, "read", opaque="outbox-1")
    assert status["entry"][0]["changes"][0]["value"]["statuses"][0]["biz_opaque_callback_data"] \
        == "outbox-1"
