"""Twilio provider module against the Twilio REST emulator, through the real ``twilio`` SDK."""
from __future__ import annotations

import pytest

from control.config import ProviderEndpoints
from control.providers import NumberInfo, ProviderRejected, get_provider

HOOK = "https://gw.example.net/api/v1/webhooks/twilio/ch_123"


@pytest.fixture
def twilio(twilio_emulator):
    return get_provider("twilio", ProviderEndpoints(twilio=twilio_emulator.url))


async def test_verify_returns_the_account(twilio, twilio_emulator):
    info = await twilio.verify(twilio_emulator.creds)
    assert info.account_id == twilio_emulator.account_sid
    assert info.name == "Converse test account" and info.status == "active"
    assert twilio_emulator.calls("accounts.fetch")[0].auth == (
        twilio_emulator.account_sid, twilio_emulator.auth_token)


async def test_suspended_account_is_rejected(twilio, twilio_emulator):
    twilio_emulator.accounts[twilio_emulator.account_sid]["status"] = "suspended"
    with pytest.raises(ProviderRejected, match="suspended"):
        await twilio.verify(twilio_emulator.creds)


async def test_list_numbers_with_capabilities(twilio, twilio_emulator):
    numbers = {n.number: n for n in await twilio.list_numbers(twilio_emulator.creds)}
    assert set(numbers) == {"+15005550006", "+15005550007"}
    assert numbers["+15005550006"].provider_id == twilio_emulator.number_sid
    assert numbers["+15005550006"].capabilities["sms"] is True
    assert numbers["+15005550007"].capabilities == {"voice": True, "sms": False, "mms": False,
                                                    "fax": False}


async def test_list_numbers_follows_pages(twilio, twilio_emulator):
    for i in range(60):                   # the module asks for pages of 50
        twilio_emulator.add_number(twilio_emulator.account_sid, f"+1500555{1000 + i}")
    numbers = await twilio.list_numbers(twilio_emulator.creds)
    assert len(numbers) == 62 and len({n.provider_id for n in numbers}) == 62
    assert len(twilio_emulator.calls("numbers.list")) == 2


@pytest.mark.parametrize("channel_type, url_field, method_field, app_field", [
    ("voice", "voice_url", "voice_method", "voice_application_sid"),
    ("sms", "sms_url", "sms_method", "sms_application_sid"),
])
async def test_configure_then_remove_webhook(twilio, twilio_emulator, channel_type, url_field,
                                             method_field, app_field):
    creds = twilio_emulator.creds
    twilio_emulator.numbers[twilio_emulator.number_sid].update(
        {method_field: "GET", app_field: "AP" + "1" * 32})
    number = [n for n in await twilio.list_numbers(creds) if n.number == "+15005550006"][0]
    result = await twilio.configure_webhook(creds, number, HOOK, channel_type)
    assert result.configured and HOOK in result.detail
    state = twilio_emulator.number("+15005550006")
    assert (state[url_field], state[method_field], state[app_field]) == (HOOK, "POST", "")
    other = "sms_url" if channel_type == "voice" else "voice_url"
    assert state[other] == ""             # the other channel type is left alone

    result = await twilio.remove_webhook(creds, number, channel_type)
    assert result.configured
    assert twilio_emulator.number("+15005550006")[url_field] == ""


async def test_remove_leaves_a_url_that_is_not_ours(twilio, twilio_emulator):
    twilio_emulator.numbers[twilio_emulator.number_sid]["voice_url"] = "https://crm.example/ivr"
    number = NumberInfo(number="+15005550006", provider_id="")
    result = await twilio.remove_webhook(twilio_emulator.creds, number, "voice")
    assert result.configured and "left alone" in result.detail
    assert twilio_emulator.number("+15005550006")["voice_url"] == "https://crm.example/ivr"
    assert twilio_emulator.calls("numbers.update") == []


async def test_configure_finds_the_number_without_its_sid(twilio, twilio_emulator):
    number = NumberInfo(number="+15005550007", provider_id="")
    await twilio.configure_webhook(twilio_emulator.creds, number, HOOK, "voice")
    assert twilio_emulator.number("+15005550007")["voice_url"] == HOOK


async def test_configure_unknown_number_is_rejected(twilio, twilio_emulator):
    with pytest.raises(ProviderRejected, match="20404"):
        await twilio.configure_webhook(
            twilio_emulator.creds, NumberInfo(number="+15005550009", provider_id="PN" + "0" * 32),
            HOOK, "voice")
    with pytest.raises(ProviderRejected, match="not on this account"):
        await twilio.configure_webhook(twilio_emulator.creds,
                                       NumberInfo(number="+15005550009", provider_id=""),
                                       HOOK, "voice")


async def test_sms_on_a_voice_only_number_is_rejected(twilio, twilio_emulator):
    number = NumberInfo(number="+15005550007", provider_id="")
    with pytest.raises(ProviderRejected, match="no sms capability"):
        await twilio.configure_webhook(twilio_emulator.creds, number, HOOK, "sms")
    assert twilio_emulator.calls("numbers.update") == []


async def test_configure_rejects_a_channel_type_twilio_does_not_serve(twilio, twilio_emulator):
    with pytest.raises(ValueError):
        await twilio.configure_webhook(twilio_emulator.creds,
                                       NumberInfo(number="+15005550006", provider_id=""),
                                       HOOK, "whatsapp")


async def test_send_message_and_find_it_again(twilio, twilio_emulator):
    creds = twilio_emulator.creds
    sid = await twilio.send_message(creds, "+15005550006", "+14155550123", "hello there", "k-1")
    assert sid.startswith("SM")
    [sent] = twilio_emulator.sent()
    assert (sent["sid"], sent["from"], sent["to"], sent["body"]) == (
        sid, "+15005550006", "+14155550123", "hello there")
    assert await twilio.find_sent(creds, "+15005550006", "+14155550123", "hello there") == [sid]
    assert await twilio.find_sent(creds, "+15005550006", "+14155550123", "other text") == []


@pytest.mark.parametrize("sender, to, text, code", [
    ("+15005550006", "not-a-number", "hi", "21211"),
    ("+15005550007", "+14155550123", "hi", "21606"),   # voice-only number
    ("+15005550006", "+14155550123", "x" * 1601, "21617"),
])
async def test_send_message_errors_carry_twilio_codes(twilio, twilio_emulator, sender, to, text,
                                                      code):
    with pytest.raises(ProviderRejected, match=code) as err:
        await twilio.send_message(twilio_emulator.creds, sender, to, text, "k")
    assert err.value.status == 400
    assert twilio_emulator.sent() == []


async def test_status_callback_round_trip(twilio, twilio_emulator):
    from twilio.request_validator import RequestValidator

    hook = "https://gw.example.net/api/v1/webhooks/twilio/ch_1/status"
    sid = await twilio.send_message(twilio_emulator.creds, "+15005550006", "+14155550123", "hi",
                                    "k", status_callback=hook)
    assert twilio_emulator.calls("messages.create")[0].form["StatusCallback"] == hook
    url, params, headers = twilio_emulator.message_status(sid, "undelivered", error_code="30003")
    assert url == hook and params["MessageStatus"] == "undelivered"
    assert params["ErrorCode"] == "30003" and twilio_emulator.sent()[0]["status"] == "undelivered"
    assert RequestValidator(twilio_emulator.auth_token).validate(
        hook, params, headers["X-Twilio-Signature"])
    plain = await twilio.send_message(twilio_emulator.creds, "+15005550006", "+14155550123", "x",
                                      "k2")
    assert twilio_emulator.message_status(plain, "delivered") is None
