"""Voice webhooks: answer an incoming call with a bidirectional media stream to the gateway.

Registered on import (``control.api`` imports this module) for ``(twilio|plivo|exotel, voice)``:

* Twilio: ``X-Twilio-Signature`` checked with the SDK's ``RequestValidator`` over the PUBLIC URL
  the number is configured with (so it validates behind a TLS-terminating proxy) and every form
  field received; answer TwiML (SDK) ``<Connect><Stream url="wss://GW/media/twilio/{channel}">``
  with ``<Parameter>``s: a short-lived stream token bound to the call, and From/To/CallSid.
* Plivo: ``X-Plivo-Signature-V3`` + nonce checked with the SDK (``validate_v3_signature``); a nonce
  seen within :data:`NONCE_WINDOW_S` by ANY control node is a replay (403): the window lives in
  the store (:mod:`control.store.nonces`), claimed once the signature checks. Answer Plivo XML (SDK)
  ``<Stream bidirectional keepCallAlive contentType="audio/x-mulaw;rate=8000">wss://…</Stream>``
  with the token (escaped to alphanumerics) and the numbers in ``extraHeaders``.
* Exotel (no signature scheme): the Voicebot applet's URL is this endpoint with the channel's
  media key (``?key=KEY`` or ``https://converse:KEY@host/...``); GET or POST answers
  ``{"url": "wss://GW/media/exotel/{channel}?token=…"}``. ``python -m control.api.voice_webhooks
  exotel-url CHANNEL_ID`` prints the URL to paste into the applet.

A channel not in service, or unknown (Twilio/Plivo voice), gets the provider's polite refusal (TwiML/Plivo XML ``Say``/``Speak`` +
``Hangup``; Exotel a 503 JSON so the flow moves on to its Hangup applet), never a 500. A bad
signature is a 403, logged with the channel id only.
"""
from __future__ import annotations

import logging
import urllib.parse

from quart import Response, request

from control.api.metrics import WEBHOOKS
from control.api.webhooks import (
    WebhookContext, register_unknown_channel_answer, register_webhook_handler,
)
from control.store import nonces
from gateway import streamauth

log = logging.getLogger("converse.webhooks.voice")

NOT_IN_SERVICE = "Sorry, this number is not in service. Goodbye."
NONCE_WINDOW_S = 600.0
_XML = "application/xml"


def stream_url(ctx: WebhookContext) -> str:
    """The gateway's public wss URL for this channel's media stream."""
    return f"{ctx.settings.gateway_public_url}/media/{ctx.provider}/{ctx.channel.id}"


def _token(ctx: WebhookContext, call_id: str) -> str:
    return streamauth.issue_stream_token(ctx.settings.token_secret, ctx.provider,
                                         ctx.channel.id, call_id)


def _signed_url(ctx: WebhookContext) -> str:
    """The public URL the provider signed: PUBLIC_URL + our path + the query it called with."""
    query = request.query_string.decode("latin-1")
    return ctx.webhook_url + ("?" + query if query else "")


def _forbidden(ctx: WebhookContext, why: str) -> Response:
    WEBHOOKS.inc(provider=ctx.provider, outcome="bad_signature")
    log.warning("%s voice webhook for channel %s rejected: %s", ctx.provider, ctx.channel.id, why)
    return Response('{"error":"forbidden","message":"signature check failed"}\n', status=403,
                    content_type="application/json")


# -- Twilio ---------------------------------------------------------------------------------------
async def twilio_voice(ctx: WebhookContext):
    from twilio.request_validator import RequestValidator
    from twilio.twiml.voice_response import Connect, VoiceResponse

    form = await request.form
    token = str(ctx.credentials().get("auth_token") or "")
    signature = request.headers.get("X-Twilio-Signature", "")
    if not token or not signature:
        return _forbidden(ctx, "no signature" if token else "channel has no auth token")
    try:
        ok = RequestValidator(token).validate(_signed_url(ctx), form, signature)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        return _forbidden(ctx, "bad X-Twilio-Signature")
    response = VoiceResponse()
    if not ctx.in_service:
        WEBHOOKS.inc(provider="twilio", outcome="not_in_service")
        response.say(NOT_IN_SERVICE)
        response.hangup()
        return Response(str(response), content_type=_XML)
    fields = form if request.method == "POST" else request.args   # a GET voice URL: query
    call_sid = fields.get("CallSid", "")
    connect = Connect()
    stream = connect.stream(url=stream_url(ctx))
    stream.parameter(name=streamauth.TOKEN_PARAM, value=_token(ctx, call_sid))
    for name, field in (("from", "From"), ("to", "To"), ("call_sid", "CallSid")):
        if fields.get(field):
            stream.parameter(name=name, value=fields.get(field)[:64])
    response.append(connect)
    WEBHOOKS.inc(provider="twilio", outcome="answered")
    return Response(str(response), content_type=_XML)


# -- Plivo ----------------------------------------------------------------------------------------
def _alnum(value: str, limit: int = 32) -> str:
    return "".join(c for c in value if c.isascii() and c.isalnum())[:limit]


async def plivo_signature_problem(ctx: WebhookContext) -> str | None:
    """Why the request is not Plivo's (None: it is): X-Plivo-Signature-V3 over the public URL and
    every field, then the nonce's freshness (a replay within the window is refused)."""
    from plivo.utils.signature_v3 import validate_v3_signature

    form = await request.form
    token = str(ctx.credentials().get("auth_token") or "")
    signature = request.headers.get("X-Plivo-Signature-V3", "")
    nonce = request.headers.get("X-Plivo-Signature-V3-Nonce", "")
    if not token or not signature or not nonce:
        return "missing signature or nonce" if token else "no auth token"
    if not nonces.acceptable(nonce):
        return "malformed nonce"        # over 256 characters, or control characters
    params = {k: (v if len(v) > 1 else v[0]) for k, v in form.lists()}
    try:
        ok = validate_v3_signature(request.method, _signed_url(ctx), nonce, token, signature,
                                   params)
    except Exception:          # the SDK's validators raise their own types on odd input
        ok = False
    if not ok:
        return "bad X-Plivo-Signature-V3"
    # Only now, signature checked, does the request reach the database: one atomic claim shared
    # by every node on this store (a replay sent to another node is refused there too).
    if not await ctx.store.run(nonces.claim_nonce, "plivo", nonce, nonces.now_ms(),
                               int(NONCE_WINDOW_S * 1000)):
        return "replayed nonce"
    return None


async def plivo_voice(ctx: WebhookContext):
    from plivo import plivoxml

    problem = await plivo_signature_problem(ctx)
    if problem is not None:
        return _forbidden(ctx, problem)
    form = await request.form
    response = plivoxml.ResponseElement()
    if not ctx.in_service:
        WEBHOOKS.inc(provider="plivo", outcome="not_in_service")
        response.add(plivoxml.SpeakElement(NOT_IN_SERVICE))
        response.add(plivoxml.HangupElement())
        return Response(response.to_string(), content_type=_XML)
    fields = form if request.method == "POST" else request.args   # a GET answer URL: query
    call_uuid = fields.get("CallUUID", "")
    headers = [f"{streamauth.TOKEN_PARAM}={streamauth.plivo_escape(_token(ctx, call_uuid))}"]
    for name, field in (("from", "From"), ("to", "To")):
        if _alnum(fields.get(field, "")):
            headers.append(f"{name}={_alnum(fields.get(field))}")
    response.add(plivoxml.StreamElement(
        stream_url(ctx), bidirectional=True, keepCallAlive=True,
        contentType="audio/x-mulaw;rate=8000", extraHeaders=",".join(headers)))
    WEBHOOKS.inc(provider="plivo", outcome="answered")
    return Response(response.to_string(), content_type=_XML)


# -- Exotel ---------------------------------------------------------------------------------------
def exotel_applet_url(settings, channel_id: str) -> str:
    """What to paste into the Voicebot applet: this webhook with the channel's media key."""
    key = streamauth.exotel_media_key(settings.token_secret, channel_id)
    return settings.webhook_url("exotel", channel_id) + "?key=" + urllib.parse.quote(key)


async def exotel_voice(ctx: WebhookContext):
    key = request.args.get("key") or streamauth.key_from_basic_auth(
        request.headers.get("Authorization"))
    try:
        streamauth.check_media_key(ctx.settings.token_secret, ctx.channel.id, key,
                                   ctx.channel.media_key_sha256)
    except streamauth.StreamAuthError as exc:
        return _forbidden(ctx, str(exc))
    if ctx.channel.status == "setup":
        await _exotel_first_call(ctx)
    if not ctx.in_service:
        WEBHOOKS.inc(provider="exotel", outcome="not_in_service")
        return Response('{"error":"not_in_service","message":"this line is not in service"}\n',
                        status=503, content_type="application/json")
    form = await request.form if request.method == "POST" else {}
    call_sid = request.args.get("CallSid") or form.get("CallSid") or ""
    url = stream_url(ctx) + "?" + urllib.parse.urlencode(
        {streamauth.TOKEN_PARAM: _token(ctx, call_sid[:64])})
    WEBHOOKS.inc(provider="exotel", outcome="answered")
    return Response('{"url":"' + url + '"}\n', content_type="application/json")


async def _exotel_first_call(ctx: WebhookContext) -> None:
    """Exotel cannot be configured by API: the channel waits in ``setup`` until the first fetch
    with its media key proves the operator configured the applet (like Meta's verification GET).
    Only a channel with its number and exactly one target goes active."""
    import msgspec

    from control.store import repo
    row = ctx.channel
    if not row.phone_number or bool(row.agent_id) == bool(row.flow_id):
        return
    saved = await ctx.store.run(repo.update_channel, msgspec.structs.replace(
        row, status="active", status_detail="", webhook_verified_at=repo.now_iso()))
    if saved is not None:
        ctx.channel = saved
        log.info("exotel channel %s active: first authenticated call from the applet", row.id)


async def twilio_unknown():
    """A voice call to a channel that does not exist (deleted, mistyped URL): apologise and hang
    up rather than a 404 the caller hears as an application error. SMS and others: None (404)."""
    from twilio.twiml.voice_response import VoiceResponse
    if request.method != "POST" or "CallSid" not in await request.form:
        return None
    response = VoiceResponse()
    response.say(NOT_IN_SERVICE)
    response.hangup()
    return Response(str(response), content_type=_XML)


async def plivo_unknown():
    from plivo import plivoxml
    if request.method != "POST" or "CallUUID" not in await request.form:
        return None
    response = plivoxml.ResponseElement()
    response.add(plivoxml.SpeakElement(NOT_IN_SERVICE))
    response.add(plivoxml.HangupElement())
    return Response(response.to_string(), content_type=_XML)


register_unknown_channel_answer("twilio", twilio_unknown)
register_unknown_channel_answer("plivo", plivo_unknown)
register_webhook_handler("twilio", "voice", twilio_voice)
register_webhook_handler("plivo", "voice", plivo_voice)
register_webhook_handler("exotel", "voice", exotel_voice)


def main(argv=None) -> int:
    """``python -m control.api.voice_webhooks exotel-url CHANNEL_ID``"""
    import sys

    from control.config import Settings
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "exotel-url":
        print("usage: python -m control.api.voice_webhooks exotel-url CHANNEL_ID", file=sys.stderr)
        return 2
    print(exotel_applet_url(Settings.from_env(create_key=False), args[1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
