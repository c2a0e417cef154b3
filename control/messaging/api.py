"""``GET /api/v1/channels/{id}/messages`` (inbox and outbox, newest first, dead letters included)
and the start of the messaging service with the app (``before_app_serving``: the worker and the
outbox sender run in the app's nursery). Importing this module registers the webhook handlers."""
from __future__ import annotations

import msgspec
from quart import Blueprint, current_app, request

from control import models
from control.api.auth import require_api_key
from control.api.errors import conflict, json_response, not_found, validation
from control.api.routing import QueryParam, operation
from control.api.state import state
from control.api.webhooks import register_webhook_handler
from control.messaging import repo as mrepo
from control.messaging.webhooks import SERVICE_KEY, handle_meta, handle_twilio_sms
from control.store import repo

register_webhook_handler("meta", "whatsapp", handle_meta)
register_webhook_handler("twilio", "sms", handle_twilio_sms)

bp = Blueprint("messaging", __name__, url_prefix="/api/v1")
bp.before_request(require_api_key)

DIRECTIONS = ("inbound", "outbound")
STATUSES = ("received", "processed", "skipped", "failed", "pending", "sending", "sent", "dead")
MAX_LIMIT = 500


class MessageOut(msgspec.Struct, kw_only=True):
    id: str
    seq: int                          # pass as ?before= to page further back
    conversation_id: str
    remote: str                       # the other party: WhatsApp id or E.164 number
    direction: str
    kind: str
    text: str | None
    status: str
    delivery: str | None = None       # provider callbacks: sent < delivered < read, failed
    provider_id: str | None = None    # wamid / Twilio sid
    reply_to: str | None = None
    attempts: int
    last_error: str = ""
    created_at: str
    updated_at: str


class MessageList(msgspec.Struct):
    items: list[MessageOut]


def _message_out(rec: dict) -> MessageOut:
    return MessageOut(id=rec["id"], seq=int(rec["seq"]), conversation_id=rec["conversation_id"],
                      remote=rec["remote"], direction=rec["direction"], kind=rec["kind"],
                      text=rec["text"], status=rec["status"], delivery=rec["delivery"],
                      provider_id=rec["provider_id"], reply_to=rec["reply_to"],
                      attempts=int(rec["attempts"]), last_error=rec["last_error"] or "",
                      created_at=rec["created_at"], updated_at=rec["updated_at"])


def _int_arg(name: str, lo: int, hi: int, default: int | None) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise validation(f"{name} must be an integer", f"query.{name}") from None
    if not lo <= value <= hi:
        raise validation(f"{name} must be between {lo} and {hi}", f"query.{name}")
    return value


def _choice(name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.args.get(name)
    if value is not None and value not in allowed:
        raise validation(f"{name} must be one of {', '.join(allowed)}", f"query.{name}")
    return value


ERR = models.Error


@operation(bp, "GET", "/channels/{channel_id}/messages", tag="messaging",
           summary="Messages of a WhatsApp/SMS channel, newest first (dead letters included)",
           query=(QueryParam("direction", {"type": "string", "enum": list(DIRECTIONS)}),
                  QueryParam("status", {"type": "string", "enum": list(STATUSES)}),
                  QueryParam("conversation_id", {"type": "string", "maxLength": 64}),
                  QueryParam("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}),
                  QueryParam("before", {"type": "integer", "minimum": 1},
                             "only messages with seq below this (paging)")),
           responses={200: MessageList, 401: ERR, 403: ERR, 404: ERR, 422: ERR})
async def list_messages(channel_id: str):
    direction, status = _choice("direction", DIRECTIONS), _choice("status", STATUSES)
    conversation_id = request.args.get("conversation_id")
    if conversation_id is not None and not 0 < len(conversation_id) <= 64:
        raise validation("conversation_id must be 1..64 characters", "query.conversation_id")
    limit = _int_arg("limit", 1, MAX_LIMIT, 100)
    before = _int_arg("before", 1, 2**62, None)
    st = state()
    if await st.store.read(repo.get_channel, channel_id) is None:
        raise not_found("channel", channel_id)
    rows = await st.store.read(lambda tx: mrepo.list_messages(
        tx, channel_id, direction=direction, status=status, conversation_id=conversation_id,
        before_seq=before, limit=limit))
    return json_response(MessageList([_message_out(r) for r in rows]))


@operation(bp, "POST", "/channels/{channel_id}/messages/{message_id}/retry", tag="messaging",
           summary="Send a dead-lettered reply again (attempts reset). For an 'unconfirmed' "
                   "WhatsApp send this may deliver it twice: the operator decides",
           responses={200: MessageOut, 401: ERR, 403: ERR, 404: ERR, 409: ERR})
async def retry_message(channel_id: str, message_id: str):
    st = state()
    if not await st.store.run(mrepo.requeue_dead, channel_id, message_id):
        rows = await st.store.read(lambda tx: [r for r in mrepo.list_messages(
            tx, channel_id, limit=1, message_id=message_id)])
        if not rows:
            raise not_found("message", message_id)
        raise conflict(f"only dead outbound messages can be retried; this one is "
                       f"{rows[0]['direction']} {rows[0]['status']}")
    service = current_app.config.get(SERVICE_KEY)
    if service is not None:
        service.outbox.poke()
    rows = await st.store.read(lambda tx: mrepo.list_messages(tx, channel_id, limit=1,
                                                              message_id=message_id))
    return json_response(_message_out(rows[0]))


@bp.before_app_serving
async def _start_messaging():
    """Run the worker and the outbox in the app's nursery (quart-trio): cancelled at shutdown."""
    from control.messaging.service import MessagingService
    st = state()
    service = MessagingService(st.store, st.settings)
    current_app.config[SERVICE_KEY] = service
    await current_app.nursery.start(service.run)
