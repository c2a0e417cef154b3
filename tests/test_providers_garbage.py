"""Whatever a provider answers -- any status, any JSON or non-JSON body -- each module ends in a
result or one of our ProviderError classes, never a stray SDK/parser exception."""
from __future__ import annotations

import json

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from control.config import ProviderEndpoints
from control.providers import ProviderError, get_provider
from emulators import ExotelEmulator, MetaEmulator, PlivoEmulator, TwilioEmulator

EMULATORS = {"twilio": (TwilioEmulator, "accounts.fetch", "numbers.list"),
             "plivo": (PlivoEmulator, "account.get", "numbers.list"),
             "exotel": (ExotelEmulator, "exophones.list", "exophones.list"),
             "meta": (MetaEmulator, "node.get", "node.get")}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=4),
    max_leaves=12)
# Bodies shaped like the real ones (so parsers get past the first key) or anything at all.
shaped = st.fixed_dictionaries({}, optional={
    "error": json_values, "message": json_values, "code": json_values, "RestException": json_values,
    "response": json_values, "sid": json_values, "status": json_values, "auth_id": json_values,
    "id": json_values, "objects": json_values, "meta": json_values, "incoming_phone_numbers":
    json_values, "data": json_values, "friendly_name": json_values})
bodies = st.one_of(shaped.map(json.dumps), json_values.map(json.dumps), st.text(max_size=40))
statuses = st.sampled_from([200, 201, 204, 400, 401, 403, 404, 409, 422, 429, 500, 502, 503])


@pytest.mark.parametrize("name", list(EMULATORS))
def test_any_answer_is_a_result_or_a_provider_error(name):
    cls, verify_route, list_route = EMULATORS[name]
    with cls() as emu:
        base = emu.base if name == "meta" else emu.url
        provider = get_provider(name, ProviderEndpoints(**{name: base}), deadline=5)

        @settings(max_examples=25, deadline=None, derandomize=True,
                  suppress_health_check=[HealthCheck.too_slow])
        @given(status=statuses, body=bodies, op=st.sampled_from(["verify", "list_numbers"]))
        def check(status, body, op):
            emu.clear_faults()
            emu.fail(verify_route if op == "verify" else list_route, status, body=body,
                     times=None)

            async def call():
                try:
                    await getattr(provider, op)(emu.creds)
                except ProviderError:
                    pass

            trio.run(call)

        check()
