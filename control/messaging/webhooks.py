"""Webhook handlers: Meta ``POST /api/v1/webhooks/meta/{id}`` (WhatsApp) and Twilio
``POST /api/v1/webhooks/twilio/{id}`` for SMS channels.

Twilio voice and SMS share the path: the registry (:mod:`control.api.webhooks`) dispatches on the
*channel's type*, so a channel id names either an SMS or a voice channel and the right handler
runs. The same SMS handler takes the delivery status callbacks of the replies we send (Twilio
posts them to the URL we give as ``StatusCallback``, which is this one).

Order of business, for both: signature first (403 on failure, nothing parsed), then parse, then
ONE transaction that stores every message (deduplicated by the provider's id through a unique
index) and applies every status, and only then the answer. So a 200 means "stored"; a store
failure is a 5xx and the provider redelivers. Signed-but-malformed payloads are logged (reason and
size only) and acknowledged: redelivering them for a week helps nobody. Messages reaching a
channel that is not ``active`` are stored as ``skipped``: never answered, even after
re-activation.
"""
from __future__ import annotations

import logging

from quart import Response, current_app
from twilio.request_validator import RequestValidator

from control import models
from control.api.errors import json_response
from control.api.metrics import WEBHOOKS
from control.api.webhooks import WebhookContext
from control.messaging import repo as mrepo
from control.messaging.wire import Delivery, Inbound, Malformed, meta_signature_ok, parse_meta, \
    parse_twilio

log = logging.getLogger("converse.messaging.webhooks")

SERVICE_KEY = "CONVERSE_MESSAGING"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def _forbidden() -> Response:
    return json_response(models.Error(error="forbidden", message="signature check failed"), 403)


def record(tx, channel_id: str, in_service: bool, inbound: list[Inbound],
           deliveries: list[Delivery]) -> tuple[int, int]:
    """Store what one webhook carried; returns (new messages, duplicates)."""
    new = dup = 0
    status = "received" if in_service else "skipped"
    for item in inbound:
        conv = mrepo.conversation_for(tx, channel_id, item.remote)
        if mrepo.insert_inbound(tx, channel_id=channel_id, conversation_id=conv.id,
                                provider_id=item.provider_id, kind=item.kind, text=item.text,
                                status=status):
            new += 1
        else:
            dup += 1
    for d in deliveries:
        mrepo.apply_delivery(tx, channel_id, d.provider_id, d.status,
                             idempotency_key=d.idempotency_key, error=d.error)
    return new, dup


async def _store(ctx: WebhookContext, inbound: list[Inbound], deliveries: list[Delivery]) -> None:
    new, dup = await ctx.store.run(record, ctx.channel.id, ctx.in_service, inbound, deliveries)
    if dup:
        WEBHOOKS.inc(dup, provider=ctx.provider, outcome="duplicate")
    if new:
        WEBHOOKS.inc(new, provider=ctx.provider, outcome="stored")
        service = current_app.config.get(SERVICE_KEY)
        if service is not None and ctx.in_service:
            service.inbox.poke()


async def handle_meta(ctx: WebhookContext):
    from quart import request
    body = await request.get_data(cache=True)
    creds = ctx.credentials()
    if not meta_signature_ok(creds.get("app_secret") or "", body,
                             request.headers.get("X-Hub-Signature-256")):
        WEBHOOKS.inc(provider="meta", outcome="bad_signature")
        return _forbidden()
    try:
        inbound, deliveries, ignored = parse_meta(body, str(creds.get("phone_number_id") or ""))
    except Malformed as exc:
        log.warning("meta webhook for %s: malformed payload acknowledged (%s, %d bytes)",
                    ctx.channel.id, exc.reason, len(body))
        WEBHOOKS.inc(provider="meta", outcome="malformed")
        return Response("", status=200)
    if ignored:
        log.info("meta webhook for %s: %d item(s) for another phone number ignored",
                 ctx.channel.id, ignored)
    await _store(ctx, inbound, deliveries)
    return Response("", status=200)


async def handle_twilio_sms(ctx: WebhookContext):
    from quart import request
    form = await request.form
    signature = request.headers.get("X-Twilio-Signature") or ""
    token = str(ctx.credentials().get("auth_token") or "")
    # Over the PUBLIC URL Twilio was given (PUBLIC_URL), not the address we were reached at.
    if not token or not signature or not RequestValidator(token).validate(
            ctx.webhook_url, form, signature):
        WEBHOOKS.inc(provider="twilio", outcome="bad_signature")
        return _forbidden()
    try:
        item = parse_twilio(form)
    except Malformed as exc:
        log.warning("twilio sms webhook for %s: malformed request acknowledged (%s)",
                    ctx.channel.id, exc.reason)
        WEBHOOKS.inc(provider="twilio", outcome="malformed")
        return Response(EMPTY_TWIML, status=200, content_type="text/xml")
    if isinstance(item, Inbound):
        await _store(ctx, [item], [])
    else:
        await _store(ctx, [], [item])
    return Response(EMPTY_TWIML, status=200, content_type="text/xml")
