"""Exotel provider module against the ExoPhone API emulator (httpx)."""
from __future__ import annotations

import pytest

from control.config import ProviderEndpoints
from control.providers import NumberInfo, ProviderRejected, get_provider
from control.providers.exotel import ExotelProvider, normalise_subdomain

HOOK = "https://gw.example.net/api/v1/webhooks/exotel/ch_123"


@pytest.fixture
def exotel(exotel_emulator):
    return get_provider("exotel", ProviderEndpoints(exotel=exotel_emulator.url))


async def test_verify_lists_exophones_with_basic_auth(exotel, exotel_emulator):
    info = await exotel.verify(exotel_emulator.creds)
    assert info.account_id == exotel_emulator.account_sid
    [call] = exotel_emulator.calls("exophones.list")
    assert call.auth == (exotel_emulator.api_key, exotel_emulator.api_token)
    assert call.path == f"/v2_beta/Accounts/{exotel_emulator.account_sid}/IncomingPhoneNumbers"


async def test_key_of_another_account_is_rejected(exotel, exotel_emulator):
    key, token = exotel_emulator.add_key("someoneelse")
    with pytest.raises(ProviderRejected, match="do not belong") as err:
        await exotel.verify(dict(exotel_emulator.creds, api_key=key, api_token=token))
    assert err.value.status == 403


async def test_list_numbers(exotel, exotel_emulator):
    [number] = await exotel.list_numbers(exotel_emulator.creds)
    assert number.number == "+918047112233" and number.capabilities["voice"] is True


async def test_configure_webhook_tells_the_operator_what_to_paste_where(exotel, exotel_emulator):
    number = NumberInfo(number="+918047112233", provider_id="x")
    result = await exotel.configure_webhook(exotel_emulator.creds, number, HOOK, "voice")
    assert result.configured is False
    assert HOOK in result.detail and "Voicebot" in result.detail
    assert "+918047112233" in result.detail
    removed = await exotel.remove_webhook(exotel_emulator.creds, number, "voice")
    assert removed.configured is False and "Voicebot" in removed.detail


@pytest.mark.parametrize("value, host", [("api.exotel.com", "api.exotel.com"),
                                         ("@api.in.exotel.com", "api.in.exotel.com"),
                                         ("https://API.in.exotel.com/", "api.in.exotel.com")])
def test_subdomain_forms(value, host):
    assert normalise_subdomain(value) == host


@pytest.mark.parametrize("bad", ["evil.example.com", "api.exotel.com.evil.net", ""])
async def test_subdomain_outside_the_allow_list_is_rejected(exotel, exotel_emulator, bad):
    with pytest.raises(ProviderRejected):
        await exotel.verify(dict(exotel_emulator.creds, subdomain=bad or " "))
    assert exotel_emulator.calls() == []


def test_default_base_uses_the_subdomain_host():
    provider = ExotelProvider(ProviderEndpoints())
    creds = {"account_sid": "acme1", "api_key": "k", "api_token": "t",
             "subdomain": "api.in.exotel.com"}
    assert provider._numbers_url(creds) == (
        "https://api.in.exotel.com/v2_beta/Accounts/acme1/IncomingPhoneNumbers")


async def test_account_sid_cannot_change_the_path(exotel, exotel_emulator):
    with pytest.raises(ProviderRejected):
        await exotel.verify(dict(exotel_emulator.creds, account_sid="../../v1/x"))
