"""One module per provider behind the small interface in :mod:`control.providers.base`.

``get_provider(name, endpoints)`` is the only way the rest of the control plane should obtain a
provider; modules are imported lazily so a broken optional SDK only breaks its own provider.
"""
from __future__ import annotations

import importlib

from control.config import ProviderEndpoints
from control.providers._http import ProviderRateLimited
from control.providers.base import (DEFAULT_DEADLINE_S, AccountInfo, NumberInfo, Provider,
                                    ProviderError, ProviderRejected, ProviderTimeout,
                                    ProviderUnavailable, WebhookResult)

# name -> (module, class). Order is the order the API documents them in.
_REGISTRY = {
    "twilio": ("control.providers.twilio", "TwilioProvider"),
    "plivo": ("control.providers.plivo", "PlivoProvider"),
    "exotel": ("control.providers.exotel", "ExotelProvider"),
    "meta": ("control.providers.meta", "MetaProvider"),
}
PROVIDERS: tuple[str, ...] = tuple(_REGISTRY)


def provider_class(name: str) -> type[Provider]:
    """The provider class (for ``channel_types``, ``credential_fields``); KeyError if unknown."""
    module_name, class_name = _REGISTRY[name]
    return getattr(importlib.import_module(module_name), class_name)


def get_provider(name: str, endpoints: ProviderEndpoints, *,
                 deadline: float = DEFAULT_DEADLINE_S) -> Provider:
    """A provider instance talking to ``endpoints``; every call is bounded by ``deadline`` s.

    Raises KeyError for an unknown name. Instances hold no credentials and are cheap: create one
    per request or keep one per process, as you like.
    """
    return provider_class(name)(endpoints, deadline=deadline)


__all__ = ["PROVIDERS", "get_provider", "provider_class", "AccountInfo", "NumberInfo",
           "WebhookResult", "Provider", "ProviderError", "ProviderRejected",
           "ProviderUnavailable", "ProviderTimeout", "ProviderRateLimited"]
