"""Twilio (voice and SMS) through the official ``twilio`` SDK.

The SDK is blocking: every call runs in a worker thread (:func:`run_sdk`) with the SDK's own HTTP
timeout set to the same deadline, so an abandoned thread ends too. The configured base URL goes
into ``client.api.base_url``, the documented per-domain override (protocols.md 2.5): every
2010-04-01 resource we use (Accounts, IncomingPhoneNumbers, Messages) lives on that domain.

Idempotency: Twilio's Messages API documents no idempotency key (``I-Twilio-Idempotency-Token`` is
a header Twilio puts on *its* webhook requests, not one it honours on ours), so ``send_message``
cannot make a retried create safe by itself; the outbox reconciles by listing sent messages
(:meth:`TwilioProvider.find_sent`) before it retries an uncertain send.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from control.config import ProviderEndpoints
from control.providers._http import (error_for_status, parse_retry_after, require_credentials,
                                     run_sdk, sdk_error)
from control.providers.base import (DEFAULT_DEADLINE_S, AccountInfo, NumberInfo, Provider,
                                    ProviderRejected, ProviderUnavailable,
                                    WebhookResult)

NAME = "twilio"
# Every webhook URL this gateway configures contains this (control.config.Settings.webhook_url).
OUR_PATH = "/api/v1/webhooks/twilio/"
MAX_NUMBERS = 1000          # an account with more numbers than this is not an operator's console
_URL_FIELDS = {"voice": ("voice_url", "voice_method", "voice_application_sid"),
               "sms": ("sms_url", "sms_method", "sms_application_sid")}


class _HttpClient(TwilioHttpClient):
    """Shared by every call with the same deadline, so connections to Twilio are kept alive
    (TLS setup costs more than the request). Remembers each thread's last response headers:
    TwilioRestException drops Retry-After."""

    def __init__(self, timeout: float):
        super().__init__(timeout=timeout)
        self._local = threading.local()

    @property
    def last_headers(self) -> dict:
        return getattr(self._local, "headers", {})

    def request(self, *args, **kwargs):
        self._local.headers = {}
        response = super().request(*args, **kwargs)
        self._local.headers = dict(response.headers or {})
        return response


_CLIENTS: dict[float, _HttpClient] = {}
_CLIENTS_LOCK = threading.Lock()


def _http_client(deadline: float) -> _HttpClient:
    with _CLIENTS_LOCK:
        if deadline not in _CLIENTS:
            _CLIENTS[deadline] = _HttpClient(timeout=deadline)
        return _CLIENTS[deadline]


class _Call:
    """One SDK client per operation, so credentials never outlive the request (the HTTP
    connection pool underneath is shared; it holds no credentials)."""

    def __init__(self, creds: dict, base_url: str, deadline: float):
        require_credentials(NAME, creds, TwilioProvider.credential_fields)
        self.sid = str(creds["account_sid"])
        self.http = _http_client(deadline)
        # environment={} keeps TWILIO_EDGE/TWILIO_REGION from rewriting the configured host.
        self.client = Client(self.sid, str(creds["auth_token"]), account_sid=self.sid,
                             http_client=self.http, environment={})
        self.client.api.base_url = base_url
        self.account = self.client.api.v2010.accounts(self.sid)

    def translate(self, exc: BaseException) -> BaseException:
        """Map an SDK/transport exception to ours; the message holds Twilio's words, no secrets."""
        if isinstance(exc, TwilioRestException):
            words = str(exc.msg or "")
            # The SDK prefixes "Unable to fetch record: " etc.; keep Twilio's own sentence.
            if words.startswith("Unable to ") and ": " in words:
                words = words.split(": ", 1)[1]
            retry = parse_retry_after(_header(self.http.last_headers, "retry-after"))
            return error_for_status(NAME, int(exc.status), words, code=exc.code, retry_after=retry)
        if isinstance(exc, TwilioServiceException):
            words = exc.detail or exc.title or ""
            retry = parse_retry_after(_header(self.http.last_headers, "retry-after"))
            return error_for_status(NAME, int(exc.status), words, code=exc.code, retry_after=retry)
        if isinstance(exc, TwilioException):
            # What the SDK raises when a 2xx body is not the record it expected.
            return ProviderUnavailable(NAME, f"unparseable answer: {type(exc).__name__}")
        return sdk_error(NAME, exc)


def _header(headers: dict, name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _number_info(pn: Any) -> NumberInfo:
    caps = pn.capabilities if isinstance(pn.capabilities, dict) else {}
    return NumberInfo(number=pn.phone_number or "", provider_id=pn.sid or "",
                      capabilities={k: bool(v) for k, v in caps.items()})


class TwilioProvider(Provider):
    name = NAME
    channel_types = ("voice", "sms")
    credential_fields = ("account_sid", "auth_token")

    def __init__(self, endpoints: ProviderEndpoints, deadline: float = DEFAULT_DEADLINE_S):
        self.base_url = endpoints.twilio.rstrip("/")
        self.deadline = deadline

    async def _run(self, creds: dict, op: Callable[[_Call], Any]) -> Any:
        call = _Call(creds, self.base_url, self.deadline)
        return await run_sdk(NAME, self.deadline, lambda: op(call), call.translate)

    async def verify(self, creds: dict) -> AccountInfo:
        account = await self._run(creds, lambda c: c.account.fetch())
        status = account.status or ""
        if status in ("suspended", "closed"):
            raise ProviderRejected(NAME, f"account {account.sid} is {status}")
        return AccountInfo(account_id=account.sid or "", name=account.friendly_name or "",
                           status=status)

    async def list_numbers(self, creds: dict) -> list[NumberInfo]:
        numbers = await self._run(
            creds, lambda c: c.account.incoming_phone_numbers.list(limit=MAX_NUMBERS, page_size=50))
        return [_number_info(pn) for pn in numbers]

    async def configure_webhook(self, creds: dict, number: NumberInfo, url: str,
                                channel_type: str) -> WebhookResult:
        url_field, method_field, app_field = self._fields(channel_type)
        # An application sid on the number overrides its URL (protocols.md 2.4): clear it.
        changes = {url_field: url, method_field: "POST", app_field: ""}

        def configure(c: _Call):
            pn = c.account.incoming_phone_numbers(_sid(c, number)).fetch()
            caps = pn.capabilities if isinstance(pn.capabilities, dict) else {}
            # Twilio would store the URL on a number that cannot receive this kind of traffic
            # and nothing would ever arrive; say so instead.
            if caps.get(channel_type) is False:
                raise ProviderRejected(NAME, f"{number.number} has no {channel_type} capability")
            return c.account.incoming_phone_numbers(pn.sid).update(**changes)

        pn = await self._run(creds, configure)
        if getattr(pn, url_field) != url:
            raise ProviderUnavailable(NAME, f"{url_field} did not take on {number.number}")
        return WebhookResult(configured=True,
                             detail=f"{number.number}: {url_field} = {url} (POST)")

    async def remove_webhook(self, creds: dict, number: NumberInfo,
                             channel_type: str) -> WebhookResult:
        url_field, _, _ = self._fields(channel_type)

        def clear(c: _Call):
            pn = c.account.incoming_phone_numbers(_sid(c, number)).fetch()
            current = getattr(pn, url_field) or ""
            # Only undo what we did: the operator may have pointed the number elsewhere since.
            if OUR_PATH not in current:
                return current
            c.account.incoming_phone_numbers(pn.sid).update(**{url_field: ""})
            return ""

        left = await self._run(creds, clear)
        if left:
            return WebhookResult(configured=True, detail=(
                f"{number.number}: {url_field} left alone, it points elsewhere ({left})"))
        return WebhookResult(configured=True, detail=f"{number.number}: {url_field} cleared")

    async def send_message(self, creds: dict, sender: str, to: str, text: str,
                           idempotency_key: str, *, status_callback: str | None = None) -> str:
        """Send an SMS (``whatsapp:``-prefixed addresses work the same way); returns the SM sid.
        ``status_callback``: the URL Twilio posts delivery statuses to."""
        # No documented idempotency parameter exists for Messages (see the module docstring).
        extra = {"status_callback": status_callback} if status_callback else {}
        message = await self._run(
            creds, lambda c: c.account.messages.create(from_=sender, to=to, body=text, **extra))
        return message.sid

    async def transfer_call(self, creds: dict, call_id: str, number: str, *,
                            transfer_url: str | None = None) -> None:
        """Replace the live call's TwiML with ``<Dial>`` (protocols.md 2.4: Calls update), which
        also ends its ``<Connect><Stream>``. The TwiML goes inline: ``transfer_url`` is unused."""
        from twilio.twiml.voice_response import Dial, VoiceResponse
        response = VoiceResponse()
        dial = Dial()
        dial.sip(number) if number.startswith(("sip:", "sips:")) else dial.number(number)
        response.append(dial)
        twiml = str(response)
        await self._run(creds, lambda c: c.account.calls(call_id).update(twiml=twiml))

    async def find_sent(self, creds: dict, sender: str, to: str, text: str,
                        limit: int = 50) -> list[str]:
        """Sids of recently sent messages from ``sender`` to ``to`` with body ``text``, newest
        first: how an outbox tells "sent but unrecorded" from "never sent" before retrying."""
        messages = await self._run(
            creds, lambda c: c.account.messages.list(from_=sender, to=to, limit=limit))
        return [m.sid for m in messages if m.body == text]

    @staticmethod
    def _fields(channel_type: str) -> tuple[str, str, str]:
        try:
            return _URL_FIELDS[channel_type]
        except KeyError:
            raise ValueError(f"twilio serves {TwilioProvider.channel_types}, "
                             f"not {channel_type!r}") from None


def _sid(call: _Call, number: NumberInfo) -> str:
    """The number's PN sid: the one we were given, else looked up by phone number."""
    if number.provider_id:
        return number.provider_id
    found = call.account.incoming_phone_numbers.list(phone_number=number.number, limit=1)
    if not found:
        raise ProviderRejected(NAME, f"number {number.number} is not on this account")
    return found[0].sid
