"""Many sends at once: the shared HTTP pools and the SDK thread limiter keep each call's answer
its own (a 429's Retry-After belongs to the call that got it) and nothing is lost or doubled."""
from __future__ import annotations

import collections

import pytest
import trio

from control.config import ProviderEndpoints
from control.providers import ProviderRateLimited, get_provider
from control.providers.base import SDK_LIMITER

N = 40


async def _send_all(provider, creds, sender) -> list:
    outcomes: list = [None] * N

    async def one(i: int):
        try:
            outcomes[i] = await provider.send_message(creds, sender, f"+1415555{1000 + i}",
                                                      f"reply {i}", f"key-{i}")
        except ProviderRateLimited as exc:
            outcomes[i] = exc

    async with trio.open_nursery() as nursery:
        for i in range(N):
            nursery.start_soon(one, i)
    return outcomes


@pytest.mark.parametrize("name", ["twilio", "meta"])
async def test_concurrent_sends_keep_their_own_answers(request, name):
    emu = request.getfixturevalue(f"{name}_emulator")
    route = "messages.create" if name == "twilio" else "messages"
    base = emu.url if name == "twilio" else emu.base
    provider = get_provider(name, ProviderEndpoints(**{name: base}))
    sender = "+15005550006" if name == "twilio" else ""
    # Two kinds of 429 interleave across threads/connections: with and without Retry-After.
    emu.fail(route, 429, retry_after=5, times=8)
    emu.fail(route, 429, times=8)

    outcomes = await _send_all(provider, emu.creds, sender)

    errors = [o for o in outcomes if isinstance(o, ProviderRateLimited)]
    ids = [o for o in outcomes if isinstance(o, str)]
    assert collections.Counter(e.retry_after for e in errors) == {5.0: 8, None: 8}
    sent = emu.sent() if name == "twilio" else emu.sent
    assert len(ids) == len(set(ids)) == len(sent) == N - 16
    assert SDK_LIMITER.borrowed_tokens == 0
