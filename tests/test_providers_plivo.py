"""Plivo provider module against the Plivo REST emulator, through the real ``plivo`` SDK."""
from __future__ import annotations

import pytest

from control.config import ProviderEndpoints
from control.providers import NumberInfo, ProviderRejected, get_provider

HOOK = "https://gw.example.net/api/v1/webhooks/plivo/ch_123"


@pytest.fixture
def plivo(plivo_emulator):
    return get_provider("plivo", ProviderEndpoints(plivo=plivo_emulator.url))


async def test_verify_returns_the_account(plivo, plivo_emulator):
    info = await plivo.verify(plivo_emulator.creds)
    assert info.account_id == plivo_emulator.auth_id and info.name == "Converse Plivo test"


async def test_malformed_auth_id_is_rejected_without_echoing_it(plivo, plivo_emulator):
    with pytest.raises(ProviderRejected, match="20 characters") as err:
        await plivo.verify(dict(plivo_emulator.creds, auth_id="XX-secretish"))
    assert "secretish" not in str(err.value) and plivo_emulator.calls() == []


async def test_list_numbers_in_e164_across_pages(plivo, plivo_emulator):
    for i in range(25):                   # Plivo pages hold at most 20
        plivo_emulator.add_number(plivo_emulator.auth_id, f"1415555{1000 + i}")
    numbers = {n.number: n for n in await plivo.list_numbers(plivo_emulator.creds)}
    assert len(numbers) == 27 and len(plivo_emulator.calls("numbers.list")) == 2
    first = numbers["+14155550100"]
    assert first.provider_id == "14155550100"
    assert first.capabilities == {"voice": True, "sms": True}
    assert numbers["+14155550101"].capabilities["sms"] is False


async def test_configure_creates_then_updates_one_application(plivo, plivo_emulator):
    creds = plivo_emulator.creds
    number = NumberInfo(number="+14155550100", provider_id="14155550100")
    result = await plivo.configure_webhook(creds, number, HOOK, "voice")
    assert result.configured and HOOK in result.detail
    app = plivo_emulator.application_of("14155550100")
    assert (app["app_name"], app["answer_url"], app["answer_method"]) == (
        "converse-14155550100", HOOK, "POST")
    assert (app["hangup_url"], app["hangup_method"]) == (HOOK, "POST")

    await plivo.configure_webhook(creds, number, HOOK + "-v2", "voice")   # idempotent: no new app
    assert len(plivo_emulator.applications) == 1
    assert plivo_emulator.application_of("14155550100")["answer_url"] == HOOK + "-v2"


async def test_remove_deletes_only_our_application(plivo, plivo_emulator):
    creds = plivo_emulator.creds
    other = NumberInfo(number="+14155550101", provider_id="14155550101")
    await plivo.configure_webhook(creds, other, HOOK, "voice")
    number = NumberInfo(number="+14155550100", provider_id="14155550100")
    await plivo.configure_webhook(creds, number, HOOK, "voice")
    result = await plivo.remove_webhook(creds, number, "voice")
    assert result.configured and "deleted" in result.detail
    assert plivo_emulator.application_of("14155550100") is None
    assert plivo_emulator.application_of("14155550101")["answer_url"] == HOOK
    again = await plivo.remove_webhook(creds, number, "voice")       # nothing left: still fine
    assert "no converse-14155550100" in again.detail


async def test_configure_unknown_number_is_rejected(plivo, plivo_emulator):
    with pytest.raises(ProviderRejected) as err:
        await plivo.configure_webhook(plivo_emulator.creds,
                                      NumberInfo(number="+19995550000", provider_id="19995550000"),
                                      HOOK, "voice")
    assert err.value.status == 404


async def test_number_without_voice_is_rejected(plivo, plivo_emulator):
    plivo_emulator.numbers["14155550101"]["voice_enabled"] = False
    with pytest.raises(ProviderRejected, match="no voice capability"):
        await plivo.configure_webhook(plivo_emulator.creds,
                                      NumberInfo(number="+14155550101", provider_id="14155550101"),
                                      HOOK, "voice")
    assert plivo_emulator.applications == {}


async def test_send_message_is_not_a_plivo_feature_here(plivo, plivo_emulator):
    with pytest.raises(ProviderRejected, match="voice-only"):
        await plivo.send_message(plivo_emulator.creds, "+14155550100", "+14155550123", "hi", "k")
