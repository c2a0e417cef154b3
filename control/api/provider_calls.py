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

# Slack on top of the provider's own deadline: the provider module should time out first (with
# its own message); this outer deadline only catches one that does not.
DEADLINE_SLACK_S = 2.0


def get(name: str) -> Provider:
    try:
        from control.providers import get_provider
    except ImportError:
        raise ApiError(503, "unavailable", "provider modules are not installed on this node") from None
    try:
        settings = state().settings
        return get_provider(name, settings.providers, deadline=settings.provider_deadline_s)
    except KeyError:
        raise validation(f"unknown provider {name!r}", "$.provider") from None


def as_api_error(exc: ProviderError) -> ApiError:
    return ApiError(exc.http_status, "provider", f"{exc.provider} said: {exc.message}",
                    provider=exc.provider)


async def call(provider: Provider, op: str, *args):
    """Run ``provider.<op>(*args)``; raise ProviderError (incl. ProviderTimeout) on failure."""
    deadline = state().settings.provider_deadline_s + DEADLINE_SLACK_S
    try:
        with trio.fail_after(deadline):
            result = await getattr(provider, op)(*args)
    except trio.TooSlowError:
        PROVIDER_CALLS.inc(provider=provider.name, op=op, outcome="timeout")
        raise ProviderTimeout(provider.name, f"no answer within {deadline:g} s") from None
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
