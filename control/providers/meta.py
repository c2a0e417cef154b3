"""Meta WhatsApp Cloud API over plain HTTPS (httpx), protocols.md section 5.

The configured base carries the Graph version (``https://graph.facebook.com/v21.0``). The
permanent access token goes in ``Authorization: Bearer``; it never appears in URLs or messages.
WhatsApp webhooks cannot be set by API for a single number: :meth:`configure_webhook` returns the
exact instructions for Meta's dashboard, and the channel turns active on Meta's verification GET.
"""
from __future__ import annotations

import re
from typing import Any

import msgspec

from control.config import ProviderEndpoints
from control.providers._http import HttpJson, require_credentials
from control.providers.base import (DEFAULT_DEADLINE_S, AccountInfo, NumberInfo, Provider,
                                    ProviderRejected, ProviderUnavailable, WebhookResult)

NAME = "meta"
MAX_TEXT = 4096                       # WhatsApp's limit on a text body
MAX_OPAQUE = 512                      # biz_opaque_callback_data limit
_ID = re.compile(r"\d{1,30}\Z")       # Graph ids are numeric; anything else would change the path
_FIELDS = "id,display_phone_number,verified_name,quality_rating,code_verification_status"


# ----- wire messages (protocols.md 5.3-5.5) ----------------------------------------------------
class _Text(msgspec.Struct, frozen=True):
    body: str
    preview_url: bool = False


# omit_defaults drops the optional fields when unset; the constant ones are therefore required
# fields, always sent.
class _TextMessage(msgspec.Struct, frozen=True, omit_defaults=True):
    messaging_product: str
    recipient_type: str
    to: str
    type: str
    text: _Text
    biz_opaque_callback_data: str | None = None


class _Typing(msgspec.Struct, frozen=True):
    type: str = "text"


class _ReadReceipt(msgspec.Struct, frozen=True, omit_defaults=True):
    messaging_product: str
    status: str
    message_id: str
    typing_indicator: _Typing | None = None


class _MessageId(msgspec.Struct, frozen=True):
    id: str


class _SendAnswer(msgspec.Struct, frozen=True):
    messages: list[_MessageId]


class _ReadAnswer(msgspec.Struct, frozen=True):
    success: bool


class _PhoneNumber(msgspec.Struct, frozen=True):
    id: str
    display_phone_number: str = ""
    verified_name: str = ""
    quality_rating: str = ""


class _PhoneNumbers(msgspec.Struct, frozen=True):
    data: list[_PhoneNumber]


def _graph_words(body: Any) -> tuple[str, object]:
    """Graph errors: ``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}``."""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return "", None
    return str(err.get("message") or err.get("type") or ""), err.get("code")


# Meta says to branch on the error ``code``, not the HTTP status, which varies for the same
# condition (throttling arrives as 400 or 429). Throttling: app call rate (4), WABA rate (80007),
# throughput (130429), pair rate (131056). Transient: unknown/service errors (1, 2, 131000,
# 131016).
_RATE_LIMIT_CODES = {4, 80007, 130429, 131056}
_TRANSIENT_CODES = {1, 2, 131000, 131016}


def _graph_kind(code: object) -> str | None:
    try:
        code = int(code)
    except (TypeError, ValueError):
        return None
    if code in _RATE_LIMIT_CODES:
        return "rate_limited"
    return "unavailable" if code in _TRANSIENT_CODES else None


def _e164(display: str) -> str:
    digits = re.sub(r"\D", "", display or "")
    return f"+{digits}" if digits else ""


class MetaProvider(Provider):
    name = NAME
    channel_types = ("whatsapp",)
    credential_fields = ("access_token", "phone_number_id", "app_secret", "verify_token")

    def __init__(self, endpoints: ProviderEndpoints, deadline: float = DEFAULT_DEADLINE_S):
        self.base_url = endpoints.meta.rstrip("/")
        self.http = HttpJson(NAME, deadline, _graph_words, _graph_kind)

    # ----- helpers -------------------------------------------------------------------------
    def _check(self, creds: dict) -> tuple[str, dict]:
        require_credentials(NAME, creds, self.credential_fields)
        pnid = str(creds["phone_number_id"])
        if not _ID.match(pnid):
            raise ProviderRejected(NAME, "phone_number_id must be the numeric id Meta shows")
        return pnid, {"Authorization": f"Bearer {creds['access_token']}"}

    async def _messages(self, creds: dict, payload: msgspec.Struct, answer: type) -> Any:
        pnid, headers = self._check(creds)
        return await self.http.request("POST", f"{self.base_url}/{pnid}/messages",
                                       headers=headers, json_body=payload, answer=answer)

    async def _number(self, creds: dict) -> _PhoneNumber:
        pnid, headers = self._check(creds)
        number = await self.http.request("GET", f"{self.base_url}/{pnid}", headers=headers,
                                         params={"fields": _FIELDS}, answer=_PhoneNumber)
        if number.id != pnid:
            raise ProviderUnavailable(NAME, "the phone number lookup answered for another id")
        return number

    # ----- interface -----------------------------------------------------------------------
    async def verify(self, creds: dict) -> AccountInfo:
        number = await self._number(creds)
        return AccountInfo(account_id=number.id,
                           name=number.verified_name or number.display_phone_number,
                           status=number.quality_rating)

    async def list_numbers(self, creds: dict) -> list[NumberInfo]:
        """The channel's number; with a ``waba_id`` credential, every number of that account."""
        waba = str(creds.get("waba_id") or "")
        if not waba:
            rows = [await self._number(creds)]
        else:
            _, headers = self._check(creds)
            if not _ID.match(waba):
                raise ProviderRejected(NAME, "waba_id must be the numeric id Meta shows")
            rows = (await self.http.request("GET", f"{self.base_url}/{waba}/phone_numbers",
                                            headers=headers, params={"fields": _FIELDS},
                                            answer=_PhoneNumbers)).data
        return [NumberInfo(number=_e164(r.display_phone_number), provider_id=r.id,
                           capabilities={"whatsapp": True}) for r in rows]

    async def configure_webhook(self, creds: dict, number: NumberInfo, url: str,
                                channel_type: str) -> WebhookResult:
        return WebhookResult(configured=False, detail=(
            "In Meta's App Dashboard, WhatsApp > Configuration > Webhook: set Callback URL to "
            f"{url} and Verify token to this channel's verify_token, click 'Verify and save', "
            "then subscribe to the 'messages' field. The channel turns active when Meta's "
            "verification request succeeds."))

    async def remove_webhook(self, creds: dict, number: NumberInfo,
                             channel_type: str) -> WebhookResult:
        return WebhookResult(configured=False, detail=(
            "Remove the callback URL in Meta's App Dashboard (WhatsApp > Configuration); until "
            "then Meta keeps delivering to it and the gateway answers that the line is gone."))

    async def send_message(self, creds: dict, sender: str, to: str, text: str,
                           idempotency_key: str) -> str:
        """Send a text from the channel's number (``sender`` is informational: the
        phone_number_id decides); returns the wamid.

        The Cloud API has no idempotency key; ``idempotency_key`` rides in
        ``biz_opaque_callback_data`` so status webhooks for this message carry it back, which is
        how an outbox can recognise a send whose answer it lost.
        """
        if not text or len(text) > MAX_TEXT:
            raise ProviderRejected(NAME, f"text must be 1..{MAX_TEXT} characters")
        message = _TextMessage("whatsapp", "individual", to.removeprefix("+"), "text",
                               _Text(body=text),
                               biz_opaque_callback_data=idempotency_key[:MAX_OPAQUE] or None)
        answer = await self._messages(creds, message, _SendAnswer)
        if not answer.messages:
            raise ProviderUnavailable(NAME, "send answer without a message id")
        return answer.messages[0].id

    async def mark_read(self, creds: dict, message_id: str, *, typing: bool = False) -> None:
        """Mark an inbound message (wamid) read; ``typing`` also shows the typing indicator."""
        receipt = _ReadReceipt("whatsapp", "read", message_id,
                               typing_indicator=_Typing() if typing else None)
        answer = await self._messages(creds, receipt, _ReadAnswer)
        if not answer.success:
            raise ProviderUnavailable(NAME, "mark-as-read was not acknowledged")
