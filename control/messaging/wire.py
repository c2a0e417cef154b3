"""Sans-IO parsing of the providers' messaging webhooks into typed events (protocols.md 2.3, 5.2).

No sockets, no store, no clock: bytes/params in, :class:`Inbound` / :class:`Delivery` out, or
:class:`Malformed` with a short reason that never quotes the payload (it may hold personal data).

* Meta: :func:`meta_signature_ok` checks ``X-Hub-Signature-256`` over the RAW body bytes (never
  a re-serialisation: Meta signs its own escaped form) in constant time; :func:`parse_meta`
  walks every ``entry[].changes[].value`` for ``messages[]`` and ``statuses[]``.
* Twilio: :func:`parse_twilio` reads the form of an inbound message (``MessageSid``/``Body``)
  or of a status callback (``MessageStatus``).
"""
from __future__ import annotations

import hashlib
import hmac
from typing import Mapping

import msgspec

MAX_TEXT = 4096          # what we keep of one inbound text (WhatsApp's own limit)


class Malformed(Exception):
    """Signed but not understood; ``reason`` is safe to log."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Inbound(msgspec.Struct, frozen=True):
    provider_id: str          # wamid / MessageSid: the deduplication key
    remote: str               # wa_id / E.164 sender: the conversation key
    kind: str                 # "text", or the provider's type ("image", "media", ...)
    text: str | None = None


class Delivery(msgspec.Struct, frozen=True):
    provider_id: str          # the outbound message's wamid / SM sid
    status: str               # sent | delivered | read | failed | undelivered | ...
    idempotency_key: str | None = None
    error: str = ""


# ----------------------------------------------------------------------------------- Meta
class _MText(msgspec.Struct, frozen=True):
    body: str = ""


class _MMessage(msgspec.Struct, frozen=True):
    id: str
    from_: str = msgspec.field(name="from", default="")
    type: str = ""
    text: _MText | None = None


class _MError(msgspec.Struct, frozen=True):
    code: int | str | None = None
    title: str = ""


class _MStatus(msgspec.Struct, frozen=True):
    id: str
    status: str
    biz_opaque_callback_data: str | None = None
    errors: list[_MError] = []


class _MMetadata(msgspec.Struct, frozen=True):
    phone_number_id: str = ""


class _MValue(msgspec.Struct, frozen=True):
    metadata: _MMetadata = _MMetadata()
    messages: list[_MMessage] = []
    statuses: list[_MStatus] = []


class _MChange(msgspec.Struct, frozen=True):
    field: str = ""
    value: _MValue = _MValue()


class _MEntry(msgspec.Struct, frozen=True):
    changes: list[_MChange] = []


class _MPayload(msgspec.Struct, frozen=True):
    object: str = ""
    entry: list[_MEntry] = []


_META_DECODER = msgspec.json.Decoder(_MPayload)


def meta_signature_ok(app_secret: str, body: bytes, header: str | None) -> bool:
    if not app_secret or not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header[len("sha256="):].strip().lower().encode())


def parse_meta(body: bytes, phone_number_id: str) -> tuple[list[Inbound], list[Delivery], int]:
    """``(messages, statuses, ignored)``; ``ignored`` counts items for another phone number id
    (a WABA subscription delivers every number's events to every callback)."""
    try:
        payload = _META_DECODER.decode(body)
    except msgspec.ValidationError as exc:
        raise Malformed(f"unexpected shape: {str(exc)[:120]}") from None
    except (msgspec.DecodeError, RecursionError):     # RecursionError: hostile nesting
        raise Malformed("not JSON") from None
    if payload.object != "whatsapp_business_account":
        raise Malformed("object is not whatsapp_business_account")
    inbound, deliveries, ignored = [], [], 0
    for entry in payload.entry:
        for change in entry.changes:
            if change.field != "messages":
                continue
            value = change.value
            if value.metadata.phone_number_id and value.metadata.phone_number_id != phone_number_id:
                ignored += len(value.messages) + len(value.statuses)
                continue
            for m in value.messages:
                if not m.id or not m.from_:
                    raise Malformed("a message without id or sender")
                if m.type == "text" and m.text is not None:
                    inbound.append(Inbound(m.id, m.from_, "text", m.text.body[:MAX_TEXT]))
                else:
                    inbound.append(Inbound(m.id, m.from_, m.type or "unknown"))
            for s in value.statuses:
                error = "; ".join(f"{e.code}: {e.title}"[:200] for e in s.errors)
                deliveries.append(Delivery(s.id, s.status, s.biz_opaque_callback_data, error))
    return inbound, deliveries, ignored


# --------------------------------------------------------------------------------- Twilio
# Twilio status callback words -> ours (DELIVERY_RANK in control.messaging.repo).
_TWILIO_STATUS = {"queued": "queued", "accepted": "accepted", "sending": "sending", "sent": "sent",
                  "delivered": "delivered", "read": "read", "undelivered": "undelivered",
                  "failed": "failed"}


def parse_twilio(form: Mapping[str, str]) -> Inbound | Delivery:
    """An inbound SMS (``Body``) or a status callback for one we sent (``MessageStatus``)."""
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    if not sid:
        raise Malformed("no MessageSid")
    status = form.get("MessageStatus")
    if status is not None and form.get("SmsStatus") != "received":
        mapped = _TWILIO_STATUS.get(status)
        if mapped is None:
            raise Malformed("unknown MessageStatus")
        error = form.get("ErrorCode") or ""
        return Delivery(sid, mapped, None, f"error {error}" if error else "")
    sender = form.get("From") or ""
    if not sender:
        raise Malformed("no From")
    body = form.get("Body") or ""
    try:
        media = int(form.get("NumMedia") or 0)
    except ValueError:
        media = 0
    if media and not body:
        return Inbound(sid, sender, "media")
    return Inbound(sid, sender, "text", body[:MAX_TEXT])
