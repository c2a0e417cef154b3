"""Meta (WhatsApp Cloud API) provider module against the Graph API emulator (httpx)."""
from __future__ import annotations

import pytest

from control.config import ProviderEndpoints
from control.providers import (NumberInfo, ProviderRateLimited, ProviderRejected,
                               ProviderUnavailable, get_provider)

HOOK = "https://gw.example.net/api/v1/webhooks/meta/ch_123"


@pytest.fixture
def meta(meta_emulator):
    return get_provider("meta", ProviderEndpoints(meta=meta_emulator.base))


async def test_verify_reads_the_phone_number_with_a_bearer_token(meta, meta_emulator):
    info = await meta.verify(meta_emulator.creds)
    assert info.account_id == meta_emulator.phone_number_id and info.name == "Converse Test"
    [call] = meta_emulator.calls("node.get")
    assert call.bearer == meta_emulator.access_token
    assert call.path == f"/v21.0/{meta_emulator.phone_number_id}"
    assert meta_emulator.access_token not in call.path + str(call.params)


async def test_a_number_the_token_cannot_see_is_rejected(meta, meta_emulator):
    other = meta_emulator.add_number("+1 555-000-1111", "Other")
    with pytest.raises(ProviderRejected, match="does not exist") as err:
        await meta.verify(dict(meta_emulator.creds, phone_number_id=other))
    assert err.value.status == 400


async def test_non_numeric_phone_number_id_is_rejected_locally(meta, meta_emulator):
    with pytest.raises(ProviderRejected, match="numeric"):
        await meta.verify(dict(meta_emulator.creds, phone_number_id="1/../me"))
    assert meta_emulator.calls() == []


async def test_list_numbers_one_or_the_whole_waba(meta, meta_emulator):
    [number] = await meta.list_numbers(meta_emulator.creds)
    assert number.number == "+15550783881" and number.provider_id == meta_emulator.phone_number_id
    second = meta_emulator.add_number("+1 555-078-3882", "Second", meta_emulator.waba_id)
    meta_emulator.tokens[meta_emulator.access_token].add(second)
    numbers = await meta.list_numbers(dict(meta_emulator.creds, waba_id=meta_emulator.waba_id))
    assert [n.number for n in numbers] == ["+15550783881", "+15550783882"]


async def test_configure_webhook_gives_dashboard_instructions(meta, meta_emulator):
    result = await meta.configure_webhook(meta_emulator.creds,
                                          NumberInfo(number="+15550783881", provider_id="1"),
                                          HOOK, "whatsapp")
    assert result.configured is False and HOOK in result.detail and "Verify token" in result.detail
    assert meta_emulator.verify_token not in result.detail   # a secret: the UI shows it, not us


async def test_send_message_returns_the_wamid(meta, meta_emulator):
    wamid = await meta.send_message(meta_emulator.creds, "+15550783881", "+16505551234",
                                    "Does it come in blue?", "outbox-42")
    [sent] = meta_emulator.sent
    assert sent["id"] == wamid and wamid.startswith("wamid.")
    assert sent["to"] == "16505551234" and sent["text"]["body"] == "Does it come in blue?"
    assert sent["messaging_product"] == "whatsapp" and sent["type"] == "text"
    assert sent["biz_opaque_callback_data"] == "outbox-42"


@pytest.mark.parametrize("to, text", [("+1", "hi"), ("+16505551234", "x" * 4097),
                                      ("+16505551234", "")])
async def test_invalid_sends_are_rejected(meta, meta_emulator, to, text):
    with pytest.raises(ProviderRejected):
        await meta.send_message(meta_emulator.creds, "", to, text, "k")
    assert meta_emulator.sent == []


async def test_mark_read(meta, meta_emulator):
    wamid = meta_emulator.add_inbound()
    await meta.mark_read(meta_emulator.creds, wamid, typing=True)
    assert meta_emulator.read == [wamid]
    assert meta_emulator.calls("messages")[0].json()["typing_indicator"] == {"type": "text"}
    with pytest.raises(ProviderRejected, match="131009"):
        await meta.mark_read(meta_emulator.creds, "wamid.unknown")


@pytest.mark.parametrize("status, code, expected", [
    (400, 130429, ProviderRateLimited),     # throughput: Meta sends it as 400 as often as 429
    (400, 131056, ProviderRateLimited),     # pair rate limit
    (400, 131000, ProviderUnavailable),     # "something went wrong": transient
    (400, 131026, ProviderRejected),        # undeliverable: permanent
    (500, 1, ProviderUnavailable),
])
async def test_graph_error_codes_decide_retryability(meta, meta_emulator, status, code, expected):
    body = {"error": {"message": f"(#{code}) words", "type": "OAuthException", "code": code,
                      "fbtrace_id": "Ax"}}
    meta_emulator.fail("messages", status, body=body)
    with pytest.raises(expected) as err:
        await meta.send_message(meta_emulator.creds, "", "+16505551234", "hi", "k")
    assert type(err.value) is expected and f"code {code}" in str(err.value)
