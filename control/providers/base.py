"""The one interface every provider module implements.

REST calls and credentials live here, never in the media-plane codecs. Blocking SDK calls (twilio,
plivo) run in ``trio.to_thread.run_sync`` under :data:`SDK_LIMITER` and a deadline; plain HTTPS
providers (Exotel, Meta) use httpx. Every provider's API base URL comes from :class:`control.config.
ProviderEndpoints`, which is how tests point the real SDKs at local emulators.

Errors are split by what the API should answer: the provider said no (422), the provider could not
be reached or answered garbage/5xx (502), the provider did not answer in time (504).
"""
from __future__ import annotations

import abc
from typing import ClassVar

import msgspec
import trio

# Bounds how many worker threads blocking SDK calls may occupy at once.
SDK_LIMITER = trio.CapacityLimiter(16)
DEFAULT_DEADLINE_S = 10.0


class AccountInfo(msgspec.Struct, frozen=True):
    account_id: str
    name: str = ""
    status: str = ""


class NumberInfo(msgspec.Struct, frozen=True):
    number: str                      # E.164 where the provider gives it
    provider_id: str                 # the provider's id for the number (Twilio PN sid, ...)
    capabilities: dict = {}          # {"voice": bool, "sms": bool, ...}


class WebhookResult(msgspec.Struct, frozen=True):
    configured: bool                 # False: the operator must do it by hand (detail says how)
    detail: str = ""


class ProviderError(Exception):
    http_status: ClassVar[int] = 502

    def __init__(self, provider: str, message: str, *, status: int | None = None):
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.message = message
        self.status = status         # the provider's own HTTP status, when there was one


class ProviderRejected(ProviderError):
    """The provider answered and said no (bad credentials, unknown number, ...)."""
    http_status = 422


class ProviderUnavailable(ProviderError):
    """Connection failed, 5xx, or an answer we could not understand."""
    http_status = 502


class ProviderTimeout(ProviderError):
    http_status = 504


class Provider(abc.ABC):
    name: ClassVar[str]
    channel_types: ClassVar[tuple[str, ...]]        # which channel types it serves
    credential_fields: ClassVar[tuple[str, ...]]    # required keys in the credentials dict

    @abc.abstractmethod
    async def verify(self, creds: dict) -> AccountInfo: ...

    @abc.abstractmethod
    async def list_numbers(self, creds: dict) -> list[NumberInfo]: ...

    @abc.abstractmethod
    async def configure_webhook(self, creds: dict, number: NumberInfo, url: str,
                                channel_type: str) -> WebhookResult: ...

    @abc.abstractmethod
    async def remove_webhook(self, creds: dict, number: NumberInfo,
                             channel_type: str) -> WebhookResult: ...

    @abc.abstractmethod
    async def send_message(self, creds: dict, sender: str, to: str, text: str,
                           idempotency_key: str) -> str:
        """Send a text message; return the provider's message id."""

    async def transfer_call(self, creds: dict, call_id: str, number: str, *,
                            transfer_url: str | None = None) -> None:
        """Move the live call ``call_id`` to ``number`` (E.164 or sip:); the media stream ends.
        ``transfer_url``: a public URL of ours that answers the provider's dial instructions, for
        providers that fetch them (Plivo) rather than take them inline (Twilio ignores it).
        Providers that cannot (or do not implement it yet) refuse."""
        raise ProviderRejected(self.name, f"{self.name} calls cannot be transferred here")
