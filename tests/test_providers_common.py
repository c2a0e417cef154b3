"""Behaviour every provider module shares, against its emulator: the error contract.

Provider said no -> ProviderRejected carrying the provider's words (and never the secret);
unreachable / 5xx / dropped connection / garbage -> ProviderUnavailable; 429 ->
ProviderRateLimited with Retry-After; no answer within the deadline -> ProviderTimeout.
"""
from __future__ import annotations

import pytest
import trio

from control.config import ProviderEndpoints
from control.providers import (PROVIDERS, ProviderRateLimited, ProviderRejected, ProviderTimeout,
                               ProviderUnavailable, get_provider, provider_class)
from control.providers.base import SDK_LIMITER

# provider -> (emulator fixture, ProviderEndpoints field, secret credential, verify route,
#              words the provider uses for bad credentials)
CASES = {
    "twilio": ("twilio_emulator", "twilio", "auth_token", "accounts.fetch", "Authenticate"),
    "plivo": ("plivo_emulator", "plivo", "auth_token", "account.get", "Authentication failed"),
    "exotel": ("exotel_emulator", "exotel", "api_token", "exophones.list", "Authentication failed"),
    "meta": ("meta_emulator", "meta", "access_token", "node.get", "Invalid OAuth access token"),
}
SMALL_DEADLINE = 0.5


def _setup(request, name: str, deadline: float = 5.0):
    fixture, field, secret, route, words = CASES[name]
    emu = request.getfixturevalue(fixture)
    base = emu.base if name == "meta" else emu.url
    provider = get_provider(name, ProviderEndpoints(**{field: base}), deadline=deadline)
    return emu, provider, secret, route, words


def test_registry_lists_every_provider():
    assert PROVIDERS == ("twilio", "plivo", "exotel", "meta")
    assert set(PROVIDERS) == set(CASES)
    for name in PROVIDERS:
        cls = provider_class(name)
        assert cls.name == name and cls.credential_fields and cls.channel_types
    with pytest.raises(KeyError):
        get_provider("nexmo", ProviderEndpoints())


@pytest.mark.parametrize("name", PROVIDERS)
async def test_verify_accepts_good_credentials(request, name):
    emu, provider, *_ = _setup(request, name)
    info = await provider.verify(emu.creds)
    assert info.account_id


@pytest.mark.parametrize("name", PROVIDERS)
async def test_bad_credentials_are_rejected_in_the_providers_words(request, name):
    emu, provider, secret, _, words = _setup(request, name)
    wrong = "WRONG-" + emu.creds[secret][::-1]
    with pytest.raises(ProviderRejected) as err:
        await provider.verify(dict(emu.creds, **{secret: wrong}))
    assert err.value.status == 401
    assert words in str(err.value) and str(err.value).startswith(f"{name}: ")
    assert wrong not in str(err.value) and emu.creds[secret] not in str(err.value)


@pytest.mark.parametrize("name", PROVIDERS)
async def test_missing_credential_is_rejected_before_any_request(request, name):
    emu, provider, secret, *_ = _setup(request, name)
    creds = dict(emu.creds)
    del creds[secret]
    with pytest.raises(ProviderRejected, match=secret):
        await provider.verify(creds)
    assert emu.calls() == []


@pytest.mark.parametrize("name", PROVIDERS)
async def test_unreachable_provider_is_unavailable(request, name):
    emu, provider, *_ = _setup(request, name)
    emu.stop()                            # nothing listens on that port any more
    with pytest.raises(ProviderUnavailable) as err:
        await provider.verify(emu.creds)
    assert not isinstance(err.value, ProviderTimeout)


@pytest.mark.parametrize("name", PROVIDERS)
async def test_dropped_connection_is_unavailable(request, name):
    emu, provider, _, route, _ = _setup(request, name)
    emu.drop(route)
    with pytest.raises(ProviderUnavailable):
        await provider.verify(emu.creds)
    await provider.verify(emu.creds)      # the fault was one-shot: the next call succeeds


@pytest.mark.parametrize("name", PROVIDERS)
async def test_server_error_is_unavailable(request, name):
    emu, provider, _, route, _ = _setup(request, name)
    emu.fail(route, 503, times=None)
    with pytest.raises(ProviderUnavailable) as err:
        await provider.verify(emu.creds)
    assert err.value.status == 503 and not isinstance(err.value, ProviderRateLimited)


@pytest.mark.parametrize("name", PROVIDERS)
async def test_rate_limit_carries_retry_after(request, name):
    emu, provider, _, route, _ = _setup(request, name)
    emu.fail(route, 429, retry_after=7)
    with pytest.raises(ProviderRateLimited) as err:
        await provider.verify(emu.creds)
    assert err.value.retry_after == 7 and err.value.status == 429


@pytest.mark.parametrize("name", PROVIDERS)
async def test_garbage_answer_is_unavailable(request, name):
    emu, provider, _, route, _ = _setup(request, name)
    emu.fail(route, 200, body="<html>maintenance</html>")
    with pytest.raises(ProviderUnavailable):
        await provider.verify(emu.creds)


@pytest.mark.parametrize("name", PROVIDERS)
async def test_hanging_provider_times_out_at_the_deadline(request, name):
    emu, provider, _, route, _ = _setup(request, name, deadline=SMALL_DEADLINE)
    emu.hang(route, seconds=60)           # far beyond the deadline; stop() releases it
    with pytest.raises(ProviderTimeout) as err:
        await provider.verify(emu.creds)
    assert err.value.http_status == 504
    # An SDK thread cannot be cancelled: it was abandoned and must end by the SDK's own HTTP
    # timeout, giving its SDK_LIMITER token back. (Waiting here also keeps the token from
    # leaking: a thread that outlives its trio.run can never return it.)
    with trio.fail_after(30):             # a bound for a hung test, not a measurement
        while SDK_LIMITER.borrowed_tokens:
            await trio.sleep(0.05)
    await provider.verify(emu.creds)      # and the provider works again

async def test_emulator_fault_api(twilio_emulator):
    """The knobs other suites rely on: persistent faults, counts, unknown routes refused."""
    provider = get_provider("twilio", ProviderEndpoints(twilio=twilio_emulator.url))
    with pytest.raises(ValueError, match="no route"):
        twilio_emulator.fail("messages.send")
    twilio_emulator.fail("accounts.fetch", 500, times=2)
    for _ in range(2):
        with pytest.raises(ProviderUnavailable):
            await provider.verify(twilio_emulator.creds)
    await provider.verify(twilio_emulator.creds)
    twilio_emulator.fail("*", 502, times=None)
    with pytest.raises(ProviderUnavailable):
        await provider.list_numbers(twilio_emulator.creds)
    twilio_emulator.clear_faults()
    assert len(await provider.list_numbers(twilio_emulator.creds)) == 2
    assert len(twilio_emulator.calls("accounts.fetch")) == 3
    assert all(c.auth and not c.headers.get("authorization") for c in twilio_emulator.calls())
