"""Meta WhatsApp Cloud API over plain HTTPS (httpx), protocols.md section 5.

The configured base carries the Graph version (``https://graph.facebook.com/v21.0``). The
permanent access token goes in ``Authorization: Bearer``; it never appears in URLs or messages.
WhatsApp webhooks cannot be set by API for a single number: :meth:`configure_webhook` returns the
exact instructions for Meta's dashboard, and the channel turns active on Meta's verification GET.
"""
from __future__ import annotations

import re
from typing import Any

from control.config import ProviderEndpoints
from control.providers._http import HttpJson
from control.providers.base import (DEFAULT_DEADLINE_S, AccountInfo, NumberInfo, Provider,
                                    ProviderRejected, ProviderUnavailable, WebhookResult)

NAME = "meta"
MAX_TEXT = 4096                       # WhatsApp's limit on a text body
MAX_OPAQUE = 512                      # biz_opaque_callback_data limit
_ID = re.compile(r"\d{1,30}\Z")       # Graph ids are numeric; anything else would change the path
_FIELDS = "id,display_phone_number,verified_name,quality_rating,code_verification_status"


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
        missing = [f for f in self.credential_fields if not creds.get(f)]
        if missing:
            raise ProviderRejected(NAME, f"missing credential field(s): {', '.join(missing)}")
        pnid = str(creds["phone_number_id"])
        if not _ID.match(pnid):
            raise ProviderRejected(NAME, "phone_number_id must be the numeric id Meta shows")
        return pnid, {"Authorization": f"Bearer {creds['access_token']}"}

    async def _messages(self, creds: dict, payload: dict) -> Any:
        pnid, headers = self._check(creds)
        return await self.http.request("POST", f"{self.base_url}/{pnid}/messages",
                                       headers=headers, json_body=payload)

    # ----- interface -----------------------------------------------------------------------
    async def verify(self, creds: dict) -> AccountInfo:
        pnid, headers = self._check(creds)
        body = await self.http.request("GET", f"{self.base_url}/{pnid}", headers=headers,
                                       params={"fields": _FIELDS})
        if not isinstance(body, dict) or str(body.get("id", "")) != pnid:
            raise ProviderUnavailable(NAME, "unexpected answer to the phone number lookup")
        return AccountInfo(account_id=pnid,
                           name=str(body.get("verified_name") or body.get("display_phone_number")
                                    or ""),
                           status=str(body.get("quality_rating") or ""))

    async def list_numbers(self, creds: dict) -> list[NumberInfo]:
        """The channel's number; with a ``waba_id`` credential, every number of that account."""
        pnid, headers = self._check(creds)
        waba = str(creds.get("waba_id") or "")
        if waba:
            if not _ID.match(waba):
                raise ProviderRejected(NAME, "waba_id must be the numeric id Meta shows")
            body = await self.http.request("GET", f"{self.base_url}/{waba}/phone_numbers",
                                           headers=headers, params={"fields": _FIELDS})
            rows = body.get("data") if isinstance(body, dict) else None
            if not isinstance(rows, list):
                raise ProviderUnavailable(NAME, "unexpected answer to the number listing")
        else:
            body = await self.http.request("GET", f"{self.base_url}/{pnid}", headers=headers,
                                           params={"fields": _FIELDS})
            rows = [body] if isinstance(body, dict) else []
        return [NumberInfo(number=_e164(str(r.get("display_phone_number", ""))),
                           provider_id=str(r.get("id", "")), capabilities={"whatsapp": True})
                for r in rows if isinstance(r, dict) and r.get("id")]

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
        payload = {"messaging_product": "whatsapp", "recipient_type": "individual",
                   "to": to.removeprefix("+"), "type": "text",
                   "text": {"preview_url": False, "body": text}}
        if idempotency_key:
            payload["biz_opaque_callback_data"] = idempotency_key[:MAX_OPAQUE]
        body = await self._messages(creds, payload)
        try:
            return str(body["messages"][0]["id"])
        except (KeyError, IndexError, TypeError):
            raise ProviderUnavailable(NAME, "send answer without a message id") from None

    async def mark_read(self, creds: dict, message_id: str, *, typing: bool = False) -> None:
        """Mark an inbound message (wamid) read; ``typing`` also shows the typing indicator."""
        payload: dict = {"messaging_product": "whatsapp", "status": "read",
                         "message_id": message_id}
        if typing:
            payload["typing_indicator"] = {"type": "text"}
        body = await self._messages(creds, payload)
        if not (isinstance(body, dict) and body.get("success") is True):
            raise ProviderUnavailable(NAME, "mark-as-read was not acknowledged")
