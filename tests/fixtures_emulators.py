"""Pytest fixtures: provider emulators on 127.0.0.1 free ports (see tests/emulators/).

Each fixture yields a started emulator (function scope: fresh state per test) with
``.url`` (``.base`` for Meta: Graph base with version), ready-made ``.creds`` and its state and
fault-injection API. ``provider_endpoints`` points every provider at the emulators; use it as
the control plane's ``ProviderEndpoints``.
"""
from __future__ import annotations

import pytest

from control.config import ProviderEndpoints
from emulators import ExotelEmulator, MetaEmulator, PlivoEmulator, TwilioEmulator


@pytest.fixture
def twilio_emulator():
    with TwilioEmulator() as emu:
        yield emu


@pytest.fixture
def plivo_emulator():
    with PlivoEmulator() as emu:
        yield emu


@pytest.fixture
def exotel_emulator():
    with ExotelEmulator() as emu:
        yield emu


@pytest.fixture
def meta_emulator():
    with MetaEmulator() as emu:
        yield emu


@pytest.fixture
def provider_endpoints(twilio_emulator, plivo_emulator, exotel_emulator, meta_emulator):
    return ProviderEndpoints(twilio=twilio_emulator.url, plivo=plivo_emulator.url,
                             exotel=exotel_emulator.url, meta=meta_emulator.base)


@pytest.fixture
def provider_env(provider_endpoints) -> dict[str, str]:
    """The environment variables that point a control-plane process at the emulators."""
    ep = provider_endpoints
    return {"TWILIO_API_BASE": ep.twilio, "PLIVO_API_BASE": ep.plivo,
            "EXOTEL_API_BASE": ep.exotel, "META_GRAPH_BASE": ep.meta}
