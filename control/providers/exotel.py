"""Exotel (voice) over plain HTTPS (httpx), protocols.md section 4.1.

Credentials: ``account_sid``, ``api_key``, ``api_token`` (HTTP Basic ``api_key:api_token``) and
``subdomain``, the regional API host Exotel shows in its dashboard (``api.exotel.com``, Singapore,
or ``api.in.exotel.com``, Mumbai).

Host selection: when the configured base (``EXOTEL_API_BASE``) is left at its default, the
``subdomain`` credential picks the host, from an allow-list (a credential must never be able to
send our Basic auth to an arbitrary host). When the operator configures another base (a proxy, a
test emulator), that base is used for every account and ``subdomain`` is only validated.

Webhooks: Exotel routes calls through dashboard flows (App Bazaar); there is no public API to put
a URL into a Voicebot applet, so :meth:`configure_webhook` returns exactly what to paste where.
"""
from __future__ import annotations

import re
from typing import Any

import httpx
import msgspec

from control.config import ProviderEndpoints
from control.providers._http import HttpJson, require_credentials
from control.providers.base import (DEFAULT_DEADLINE_S, AccountInfo, NumberInfo, Provider,
                                    ProviderRejected, WebhookResult)

NAME = "exotel"
DEFAULT_BASE = ProviderEndpoints().exotel
REGIONAL_HOSTS = ("api.exotel.com", "api.in.exotel.com")
_SID = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")   # the sid goes into the path: no '/', '?', '..'


class _ExoPhone(msgspec.Struct, frozen=True):
    sid: str = ""
    phone_number: str = ""
    capabilities: dict[str, Any] | None = None


class _ExoPhones(msgspec.Struct, frozen=True):
    incoming_phone_numbers: list[_ExoPhone]


def _exotel_words(body: Any) -> tuple[str, object]:
    """Exotel answers errors in a few shapes depending on the API generation; accept them all."""
    if not isinstance(body, dict):
        return "", None
    rest = body.get("RestException")
    if isinstance(rest, dict):
        return str(rest.get("Message") or ""), None
    response = body.get("response")
    if isinstance(response, dict) and isinstance(response.get("error_data"), dict):
        err = response["error_data"]
        words = str(err.get("message") or "")
        if err.get("description") and err["description"] != words:
            words = f"{words}: {err['description']}" if words else str(err["description"])
        return words, err.get("code")
    return str(body.get("message") or body.get("error") or ""), None


def normalise_subdomain(value: str) -> str:
    """``@api.in.exotel.com`` / ``https://api.exotel.com/`` -> the bare host; ProviderRejected if
    it is not one of Exotel's regional API hosts."""
    host = str(value).strip().lower().removeprefix("@").removeprefix("https://").rstrip("/")
    if host not in REGIONAL_HOSTS:
        raise ProviderRejected(NAME, f"subdomain must be one of {', '.join(REGIONAL_HOSTS)}")
    return host


class ExotelProvider(Provider):
    name = NAME
    channel_types = ("voice",)
    credential_fields = ("account_sid", "api_key", "api_token", "subdomain")

    def __init__(self, endpoints: ProviderEndpoints, deadline: float = DEFAULT_DEADLINE_S):
        self.base_url = endpoints.exotel.rstrip("/")
        self.http = HttpJson(NAME, deadline, _exotel_words)

    def _numbers_url(self, creds: dict) -> str:
        require_credentials(NAME, creds, self.credential_fields)
        host = normalise_subdomain(creds["subdomain"])
        sid = str(creds["account_sid"])
        if not _SID.match(sid):
            raise ProviderRejected(NAME, "account_sid has characters Exotel never uses")
        base = f"https://{host}" if self.base_url == DEFAULT_BASE else self.base_url
        return f"{base}/v2_beta/Accounts/{sid}/IncomingPhoneNumbers"

    async def _exophones(self, creds: dict) -> list[_ExoPhone]:
        url = self._numbers_url(creds)
        answer = await self.http.request(
            "GET", url, auth=httpx.BasicAuth(str(creds["api_key"]), str(creds["api_token"])),
            answer=_ExoPhones)
        return answer.incoming_phone_numbers

    async def verify(self, creds: dict) -> AccountInfo:
        # Listing ExoPhones is the cheapest authenticated call; it doubles as the credential check.
        await self._exophones(creds)
        return AccountInfo(account_id=str(creds["account_sid"]), name="", status="active")

    async def list_numbers(self, creds: dict) -> list[NumberInfo]:
        return [NumberInfo(number=p.phone_number, provider_id=p.sid,
                           capabilities={k: bool(v) for k, v in (p.capabilities or
                                                                 {"voice": True}).items()})
                for p in await self._exophones(creds)]

    async def configure_webhook(self, creds: dict, number: NumberInfo, url: str,
                                channel_type: str) -> WebhookResult:
        return WebhookResult(configured=False, detail=(
            f"Exotel has no API for this step. In the Exotel dashboard, App Bazaar: open (or "
            f"create) the flow used by ExoPhone {number.number}, add a Voicebot applet, set its "
            f"URL to {url} (Exotel fetches the stream address from it on each call), put a "
            "Hangup applet after it, save, and assign the flow to the ExoPhone."))

    async def remove_webhook(self, creds: dict, number: NumberInfo,
                             channel_type: str) -> WebhookResult:
        return WebhookResult(configured=False, detail=(
            f"In the Exotel dashboard, remove the Voicebot applet pointing at this gateway from "
            f"the flow of ExoPhone {number.number}."))

    async def send_message(self, creds: dict, sender: str, to: str, text: str,
                           idempotency_key: str) -> str:
        raise ProviderRejected(NAME, "Exotel channels are voice-only in this gateway")
