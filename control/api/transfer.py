"""``POST /api/v1/webhooks/plivo/{channel_id}/transfer?t=TOKEN``: the ``<Dial>`` Plivo transfers
run.

Plivo's Transfer Call API takes no XML, only a URL it then fetches for the caller's leg
(``aleg_url``). A flow's ``transfer`` node therefore asks :func:`transfer_url` for a URL of this
route, with the number bound into a short-lived token (audience ``transfer``, channel ``ch``,
number ``to``), and hands it to ``PlivoProvider.transfer_call``. The route answers
``<Response><Dial><Number>NUMBER</Number></Dial></Response>`` (the SDK's ``plivoxml``) only when

* the token is ours, unexpired and for this channel (403 otherwise: the route is no open dialler,
  the number comes from the token, never from the request);
* the channel is a Plivo voice channel (404);
* ``X-Plivo-Signature-V3`` validates with the channel's auth token over the public URL Plivo was
  given, and its nonce is fresh (403) -- the voice webhook's helpers (``_signed_url``,
  ``_forbidden``, the shared nonce window) do the work, so a nonce replayed from one route to the
  other is caught too;
* the number is E.164 (422).
"""
from __future__ import annotations

import logging
import urllib.parse

from quart import Blueprint, Response, request

from control import models
from control.api import voice_webhooks as voice
from control.api.errors import ApiError
from control.api.metrics import WEBHOOKS
from control.api.routing import QueryParam, operation
from control.api.state import state
from control.api.webhooks import WebhookContext
from control.providers.plivo import is_e164
from control.store import repo
from gateway import tokens

log = logging.getLogger("converse.webhooks.transfer")

bp = Blueprint("transfer", __name__, url_prefix="/api/v1")

AUDIENCE = "transfer"
TOKEN_TTL_S = 120              # Plivo fetches the URL within seconds of the transfer request
SUFFIX = "/transfer"
_XML = "application/xml"


def transfer_url(settings, channel_id: str, number: str) -> str:
    """The public URL Plivo fetches to transfer a call on ``channel_id`` to ``number``."""
    if not is_e164(number):
        raise ValueError(f"transfer target {number!r:.40} is not an E.164 number")
    token = tokens.issue(settings.token_secret, AUDIENCE, ttl_s=TOKEN_TTL_S, ch=channel_id,
                         to=number)
    return (settings.webhook_url("plivo", channel_id) + SUFFIX + "?"
            + urllib.parse.urlencode({"t": token}))


class _TransferContext(WebhookContext):
    @property
    def webhook_url(self) -> str:
        """What Plivo signs: the URL it was given, this route's (the query is added by
        ``voice._signed_url``)."""
        return super().webhook_url + SUFFIX


def dial_xml(number: str) -> str:
    from plivo import plivoxml
    return plivoxml.ResponseElement().add(
        plivoxml.DialElement().add(plivoxml.NumberElement(number))).to_string()


@operation(bp, "POST", "/webhooks/plivo/{channel_id}/transfer", auth=False, tag="webhooks",
           summary="Plivo fetches the <Dial> of a flow's call transfer (token-bound number, "
                   "signature-checked)",
           query=(QueryParam("t", {"type": "string"}, "transfer token minted by the gateway"),),
           responses={200: "any", 403: models.Error, 404: models.Error, 422: models.Error})
async def plivo_transfer(channel_id: str):
    st = state()
    try:
        claims = tokens.verify(st.settings.token_secret, request.args.get("t"), AUDIENCE)
    except tokens.TokenError as exc:
        WEBHOOKS.inc(provider="plivo", outcome="transfer_bad_token")
        raise ApiError(403, "forbidden", f"transfer token refused: {exc}") from None
    if claims.get("ch") != channel_id:
        WEBHOOKS.inc(provider="plivo", outcome="transfer_bad_token")
        raise ApiError(403, "forbidden", "transfer token refused: token is for another channel")
    row = await st.store.read(repo.get_channel, channel_id)
    if row is None or row.provider != "plivo" or row.type != "voice":
        raise ApiError(404, "not_found", f"no plivo voice channel {channel_id}")
    ctx = _TransferContext(st, "plivo", row)
    problem = await voice.plivo_signature_problem(ctx)
    if problem is not None:
        return voice._forbidden(ctx, problem)
    number = claims.get("to")
    if not is_e164(number):
        raise ApiError(422, "validation", "transfer target is not an E.164 number", field="to")
    WEBHOOKS.inc(provider="plivo", outcome="transfer_dial")
    log.info("plivo transfer on %s: answered <Dial>", channel_id)
    return Response(dial_xml(number), content_type=_XML)
