"""Plivo (voice) through the official ``plivo`` SDK.

Base URL: the SDK rebuilds its base from module constants on every request (protocols.md 3.7), so
patching them would be global and racy. Instead each client's ``requests`` session gets a mounted
adapter that rewrites ``https://api.plivo.com`` to the configured base -- per client, thread-safe
-- and remembers the last status and headers, which the SDK's exceptions drop.

Webhook model: one Application per number, named ``converse-<number>``, whose ``answer_url``
(POST) is the channel's webhook; the number is linked to it. Removing deletes that application,
which returns the number to the account's default application.
"""
from __future__ import annotations

import re
import threading
from typing import Any, Callable

import plivo
from plivo import exceptions as plivo_errors
from requests.adapters import HTTPAdapter

from control.config import ProviderEndpoints
from control.providers._http import (error_for_status, parse_retry_after, require_credentials,
                                     run_sdk, sdk_error)
from control.providers.base import (DEFAULT_DEADLINE_S, AccountInfo, NumberInfo, Provider,
                                    ProviderRejected, ProviderUnavailable,
                                    WebhookResult)

NAME = "plivo"
SDK_HOST = "https://api.plivo.com"
APP_PREFIX = "converse-"
SDK_LIMITER_SIZE = 16          # connections worth keeping: one per SDK worker thread
MAX_PAGES = 50                 # 20 numbers per page (Plivo's cap): 1000 numbers at most
E164 = re.compile(r"\+[1-9][0-9]{1,14}")


def is_e164(number: object) -> bool:
    """``+`` then 2..15 digits, no leading zero: what ``<Dial><Number>`` is given."""
    return isinstance(number, str) and E164.fullmatch(number) is not None


class _Adapter(HTTPAdapter):
    """Sends the SDK's requests to the configured base and remembers, per thread, the last
    answer's status and headers. One per base URL, shared, so connections are kept alive."""

    def __init__(self, base_url: str):
        super().__init__(max_retries=0, pool_maxsize=SDK_LIMITER_SIZE)
        self.base_url = base_url
        self._local = threading.local()

    @property
    def last_status(self) -> int | None:
        return getattr(self._local, "status", None)

    @property
    def last_headers(self) -> dict:
        return getattr(self._local, "headers", {})

    def send(self, request, **kwargs):
        self._local.status, self._local.headers = None, {}
        if request.url.startswith(SDK_HOST):
            request.url = self.base_url + request.url[len(SDK_HOST):]
        response = super().send(request, **kwargs)
        self._local.status, self._local.headers = response.status_code, dict(response.headers)
        return response

    def close(self):
        """Shared: a client's session.close() must not close the pool under other calls."""


_ADAPTERS: dict[str, _Adapter] = {}
_ADAPTERS_LOCK = threading.Lock()


def _adapter(base_url: str) -> _Adapter:
    with _ADAPTERS_LOCK:
        if base_url not in _ADAPTERS:
            _ADAPTERS[base_url] = _Adapter(base_url)
        return _ADAPTERS[base_url]


class _Call:
    def __init__(self, creds: dict, base_url: str, deadline: float):
        require_credentials(NAME, creds, PlivoProvider.credential_fields)
        auth_id = str(creds["auth_id"])
        if len(auth_id) != 20 or auth_id[:2] not in ("MA", "SA"):
            # The SDK checks this too, but its message would echo the value back.
            raise ProviderRejected(NAME, "auth_id must be 20 characters starting with MA or SA")
        self.client = plivo.RestClient(auth_id, str(creds["auth_token"]), timeout=deadline)
        self.adapter = _adapter(base_url)
        self.client.session.mount(SDK_HOST, self.adapter)

    def translate(self, exc: BaseException) -> BaseException:
        if isinstance(exc, plivo_errors.PlivoRestError):
            words = str(exc.args[0]) if exc.args else type(exc).__name__
            status = self.adapter.last_status or _status_of(exc)
            retry = parse_retry_after(self.adapter.last_headers.get("Retry-After"))
            return error_for_status(NAME, status, words, retry_after=retry)
        return sdk_error(NAME, exc)


def _status_of(exc: Exception) -> int:
    """The status a Plivo SDK exception stands for when no response was seen (local checks)."""
    for cls, status in ((plivo_errors.AuthenticationError, 401),
                        (plivo_errors.ForbiddenError, 403),
                        (plivo_errors.ResourceNotFoundError, 404),
                        (plivo_errors.ValidationError, 400),
                        (plivo_errors.InvalidRequestError, 400)):
        if isinstance(exc, cls):
            return status
    return 502


def _app_id(application_uri: Any) -> str:
    """``/v1/Account/MA.../Application/<id>/`` -> ``<id>``."""
    parts = [p for p in str(application_uri or "").split("/") if p]
    return parts[-1] if len(parts) >= 2 and parts[-2] == "Application" else ""


def _e164(number: str) -> str:
    return number if number.startswith("+") else f"+{number}"


class PlivoProvider(Provider):
    name = NAME
    channel_types = ("voice",)
    credential_fields = ("auth_id", "auth_token")

    def __init__(self, endpoints: ProviderEndpoints, deadline: float = DEFAULT_DEADLINE_S):
        self.base_url = endpoints.plivo.rstrip("/")
        self.deadline = deadline

    async def _run(self, creds: dict, op: Callable[[Any], Any]) -> Any:
        call = _Call(creds, self.base_url, self.deadline)
        return await run_sdk(NAME, self.deadline, lambda: op(call.client), call.translate)

    async def verify(self, creds: dict) -> AccountInfo:
        account = await self._run(creds, lambda c: c.account.get())
        # The SDK turns an unparseable 200 into None; that is no proof the credentials work.
        if str(getattr(account, "auth_id", "")) != str(creds["auth_id"]):
            raise ProviderUnavailable(NAME, "unexpected answer to the account lookup")
        return AccountInfo(account_id=str(account.auth_id),
                           name=str(getattr(account, "name", "") or ""),
                           status=str(getattr(account, "account_type", "") or ""))

    async def list_numbers(self, creds: dict) -> list[NumberInfo]:
        def all_pages(c):
            rows = []
            for page in range(MAX_PAGES):
                batch = c.numbers.list(limit=20, offset=page * 20)
                rows.extend(batch.objects)
                if len(batch.objects) < 20 or not getattr(batch.meta, "next", None):
                    break
            return rows

        rows = await self._run(creds, all_pages)
        return [NumberInfo(number=_e164(str(n.number)), provider_id=str(n.number),
                           capabilities={"voice": bool(getattr(n, "voice_enabled", False)),
                                         "sms": bool(getattr(n, "sms_enabled", False))})
                for n in rows]

    async def configure_webhook(self, creds: dict, number: NumberInfo, url: str,
                                channel_type: str) -> WebhookResult:
        self._check_type(channel_type)
        plivo_number, app_name = self._ids(number)

        def provision(c):
            if getattr(c.numbers.get(plivo_number), "voice_enabled", True) is False:
                raise ProviderRejected(NAME, f"{number.number} has no voice capability")
            found = c.applications.list(app_name=app_name).objects
            mine = [a for a in found if getattr(a, "app_name", "") == app_name]
            # Hang-up notices go to the same webhook (Plivo marks them Event=Hangup), said
            # explicitly rather than left to Plivo's default.
            urls = {"answer_url": url, "answer_method": "POST", "hangup_url": url,
                    "hangup_method": "POST"}
            if mine:
                app_id = str(mine[0].app_id)
                c.applications.update(app_id, **urls)
            else:
                app_id = str(c.applications.create(app_name=app_name, **urls).app_id)
            c.numbers.update(plivo_number, app_id=app_id)
            linked = _app_id(getattr(c.numbers.get(plivo_number), "application", ""))
            return app_id, linked

        app_id, linked = await self._run(creds, provision)
        if linked != app_id:
            raise ProviderUnavailable(NAME, f"{number.number} did not link to application {app_id}")
        return WebhookResult(configured=True, detail=(
            f"{number.number} -> application {app_name} ({app_id}): answer_url = {url} (POST)"))

    async def remove_webhook(self, creds: dict, number: NumberInfo,
                             channel_type: str) -> WebhookResult:
        self._check_type(channel_type)
        plivo_number, app_name = self._ids(number)

        def unprovision(c):
            found = c.applications.list(app_name=app_name).objects
            deleted = []
            for app in found:
                if getattr(app, "app_name", "") == app_name:   # never touch someone else's app
                    c.applications.delete(str(app.app_id))
                    deleted.append(str(app.app_id))
            return deleted

        deleted = await self._run(creds, unprovision)
        detail = (f"{number.number}: deleted application {app_name}" if deleted
                  else f"{number.number}: no {app_name} application to remove")
        return WebhookResult(configured=True, detail=detail)

    async def send_message(self, creds: dict, sender: str, to: str, text: str,
                           idempotency_key: str) -> str:
        raise ProviderRejected(NAME, "Plivo channels are voice-only in this gateway")

    async def transfer_call(self, creds: dict, call_id: str, number: str, *,
                            transfer_url: str | None = None) -> None:
        """Plivo's Transfer Call API (``POST /Call/{uuid}/`` with ``legs=aleg``): Plivo fetches
        ``transfer_url`` (our ``<Dial>`` XML, control/api/transfer.py) and runs it on the caller's
        leg, which also ends the ``<Stream>``. Checked before anything is sent: the number (E.164
        only: Plivo dials SIP with ``<User>``, not offered here) and that we have a URL."""
        if not is_e164(number):
            raise ProviderRejected(NAME, f"transfer target {number!r:.40} is not an E.164 number")
        if not transfer_url:
            raise ProviderRejected(NAME, "a Plivo transfer needs a public transfer URL "
                                         "(PUBLIC_URL) for Plivo to fetch")
        call_uuid = str(call_id)
        await self._run(creds, lambda c: c.calls.transfer(
            call_uuid, legs="aleg", aleg_url=transfer_url, aleg_method="POST"))

    def _check_type(self, channel_type: str) -> None:
        if channel_type not in self.channel_types:
            raise ValueError(f"plivo serves {self.channel_types}, not {channel_type!r}")

    @staticmethod
    def _ids(number: NumberInfo) -> tuple[str, str]:
        plivo_number = (number.provider_id or number.number).lstrip("+")
        if not plivo_number.isdigit():
            raise ProviderRejected(NAME, f"{number.number!r} is not a phone number")
        return plivo_number, APP_PREFIX + plivo_number
