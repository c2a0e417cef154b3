"""Calling a provider from a request: find it, bound it by a deadline, map its errors.

A provider that hangs never holds a request beyond ``PROVIDER_DEADLINE_S``; its errors become
``{"error": "provider", "provider": ..., "message": ...}`` with ``ProviderError.http_status``.
"""
from __future__ import annotations

import logging

import trio

from control.api.errors import ApiError, validation
from control.api.metrics import PROVIDER_CALLS
from control.api.state import state
from control.providers.base import Provider, ProviderError, ProviderTimeout

log = logging.getLogger("converse.providers")

PROVIDER_DEADLINE_S = 15.0


def get(name: str) -> Provider:
    try:
        from control.providers import get_provider
    except ImportError:
        raise ApiError(503, "unavailable", "provider modules are not installed on this node") from None
    try:
        return get_provider(name, state().settings.providers)
    except KeyError:
        raise validation(f"unknown provider {name!r}", "$.provider") from None


def as_api_error(exc: ProviderError) -> ApiError:
    return ApiError(exc.http_status, "provider", f"{exc.provider} said: {exc.message}",
                    provider=exc.provider)


async def call(provider: Provider, op: str, *args):
    """Run ``provider.<op>(*args)``; raise ProviderError (incl. ProviderTimeout) on failure."""
    try:
        with trio.fail_after(PROVIDER_DEADLINE_S):
            result = await getattr(provider, op)(*args)
    except trio.TooSlowError:
        PROVIDER_CALLS.inc(provider=provider.name, op=op, outcome="timeout")
        raise ProviderTimeout(provider.name, f"no answer within {PROVIDER_DEADLINE_S:g} s") from None
    except ProviderError as exc:
        PROVIDER_CALLS.inc(provider=provider.name, op=op, outcome=type(exc).__name__)
        raise
    except Exception as exc:
        # A bug in a provider module must not become a 500 with a trace; log the type only
        # (the message may quote credentials the SDK was given).
        log.error("provider %s %s failed unexpectedly: %s", provider.name, op, type(exc).__name__)
        PROVIDER_CALLS.inc(provider=provider.name, op=op, outcome="bug")
        raise ProviderError(provider.name, f"unexpected failure during {op}") from None
    PROVIDER_CALLS.inc(provider=provider.name, op=op, outcome="ok")
    return result
