"""``GET|POST /api/v1/webhooks/{provider}/{channel_id}``: provider callbacks, no API key (providers
authenticate by signature, which each handler checks).

The voice and messaging parts plug in with one call::

    register_webhook_handler("twilio", "voice", handle_twilio_voice)

A handler is ``async def handler(ctx: WebhookContext) -> quart.Response`` (anything Quart accepts as
a return value). It sees the channel in whatever status it is: when ``not ctx.in_service`` (inactive,
setup, error) it answers in the provider's language that the line is not in service.

Built in: Meta's verification handshake (GET with ``hub.mode=subscribe``), which turns a WhatsApp
channel from setup to active. An unknown channel, a provider that does not match the channel, or a
provider/type with no handler yet answers a JSON 404, never a 500.
"""
from __future__ import annotations

import hmac
import logging
from typing import Awaitable, Callable

import msgspec
from quart import Blueprint, Response, request

from control import models
from control.api.errors import ApiError, json_response
from control.api.metrics import WEBHOOKS
from control.api.routing import QueryParam, operation
from control.api.state import AppState, state
from control.store import channel_aad, repo

log = logging.getLogger("converse.webhooks")

bp = Blueprint("webhooks", __name__, url_prefix="/api/v1")


class WebhookContext:
    def __init__(self, app_state: AppState, provider: str, channel: repo.ChannelRow):
        self.state = app_state
        self.settings = app_state.settings
        self.store = app_state.store
        self.directory = app_state.directory
        self.provider = provider
        self.channel = channel
        self.request = request
        self._creds: dict | None = None

    @property
    def in_service(self) -> bool:
        return self.channel.status == "active"

    @property
    def webhook_url(self) -> str:
        """The URL the provider was told to call (what Twilio/Plivo sign)."""
        return self.settings.webhook_url(self.provider, self.channel.id)

    def credentials(self) -> dict:
        """The channel's decrypted provider credentials (auth token / app secret for signature
        checks). Never log them."""
        if self._creds is None:
            ct = self.channel.credentials
            self._creds = self.store.box.decrypt_json(ct, channel_aad(self.channel.id)) if ct else {}
        return self._creds


WebhookHandler = Callable[[WebhookContext], Awaitable[object]]
_HANDLERS: dict[tuple[str, str], WebhookHandler] = {}


def register_webhook_handler(provider: str, channel_type: str, handler: WebhookHandler) -> None:
    _HANDLERS[(provider, channel_type)] = handler


# provider -> async () -> response or None: how a call to an unknown channel is answered (e.g.
# TwiML that apologises and hangs up, instead of a 404 the caller hears as "application error").
_UNKNOWN_CHANNEL: dict[str, Callable[[], Awaitable[object]]] = {}


def register_unknown_channel_answer(provider: str, answer) -> None:
    _UNKNOWN_CHANNEL[provider] = answer


def webhook_handler(provider: str, channel_type: str):
    """Decorator form of :func:`register_webhook_handler`."""
    def deco(fn):
        register_webhook_handler(provider, channel_type, fn)
        return fn
    return deco


def _not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


HANDSHAKE_ATTEMPTS = 3


def _verified(row: repo.ChannelRow) -> repo.ChannelRow:
    """The row after Meta verified the callback URL: active when it has exactly one target."""
    changes = {"webhook_verified_at": repo.now_iso()}
    if row.status in ("setup", "error"):
        if bool(row.agent_id) != bool(row.flow_id):
            changes.update(status="active", status_detail="")
        else:
            changes["status_detail"] = "verified by Meta; assign an agent or a flow, then activate"
    return msgspec.structs.replace(row, **changes)


async def _meta_handshake(ctx: WebhookContext):
    args = request.args
    mode, token, challenge = (args.get("hub.mode"), args.get("hub.verify_token"),
                              args.get("hub.challenge"))
    expected = ctx.credentials().get("verify_token") or ""
    if mode != "subscribe" or token is None or challenge is None or not expected or \
            not hmac.compare_digest(token.encode(), expected.encode()):
        WEBHOOKS.inc(provider="meta", outcome="handshake_rejected")
        return json_response(models.Error(error="forbidden", message="verification failed"), 403)
    row = ctx.channel
    for _ in range(HANDSHAKE_ATTEMPTS):
        # Compare-and-set: an operator PATCH racing the handshake makes us re-read and retry.
        if await ctx.store.run(repo.update_channel, _verified(row)) is not None:
            break
        row = await ctx.store.read(repo.get_channel, row.id)
        if row is None:
            break
    else:
        log.warning("meta handshake for %s kept racing other updates; activate by hand", row.id)
    WEBHOOKS.inc(provider="meta", outcome="handshake_ok")
    return Response(challenge, status=200, content_type="text/plain")


async def _dispatch(provider: str, channel_id: str):
    st = state()
    row = await st.store.read(repo.get_channel, channel_id)
    if row is None or row.provider != provider:
        WEBHOOKS.inc(provider=provider if provider in ("twilio", "plivo", "exotel", "meta")
                     else "other", outcome="unknown_channel")
        answer = _UNKNOWN_CHANNEL.get(provider)
        polite = await answer() if answer is not None else None
        if polite is not None:
            return polite
        raise _not_found(f"no {provider} channel {channel_id}")
    ctx = WebhookContext(st, provider, row)
    if provider == "meta" and request.method == "GET":
        return await _meta_handshake(ctx)
    handler = _HANDLERS.get((provider, row.type))
    if handler is None:
        WEBHOOKS.inc(provider=provider, outcome="no_handler")
        raise _not_found(f"{provider} {row.type} webhooks are not handled by this node yet")
    WEBHOOKS.inc(provider=provider, outcome="dispatched")
    return await handler(ctx)


_RESPONSES = {200: "any", 403: models.Error, 404: models.Error}


@operation(bp, "GET", "/webhooks/{provider}/{channel_id}", auth=False, tag="webhooks",
           summary="Provider callback (Meta's verification handshake is a GET)",
           query=(QueryParam("hub.mode", {"type": "string"}),
                  QueryParam("hub.verify_token", {"type": "string"}),
                  QueryParam("hub.challenge", {"type": "string"})),
           responses=_RESPONSES)
async def webhook_get(provider: str, channel_id: str):
    return await _dispatch(provider, channel_id)


@operation(bp, "POST", "/webhooks/{provider}/{channel_id}", auth=False, tag="webhooks",
           summary="Provider callback (voice answer, SMS, WhatsApp events); signature-checked "
                   "by the provider's handler", responses=_RESPONSES)
async def webhook_post(provider: str, channel_id: str):
    return await _dispatch(provider, channel_id)
