"""/api/v1/channels: the operator's flow (create -> numbers -> PATCH -> activate -> ...).

Credentials are verified with the provider before anything is stored, encrypted with the row id
bound in, and only ever returned masked. State changes of one channel are serialized (a per-channel
lock in this process, the row's version column across processes), so concurrent PATCH/activate
calls cannot leave a channel half-configured: each one writes a whole, consistent row or nothing.
"""
from __future__ import annotations

import datetime
import secrets as _random
import time

import msgspec
from quart import Blueprint, request

from control import models
from control.api import agents_flows, provider_calls, validate
from control.api.auth import require_api_key
from control.api.errors import (ApiError, check_string_map, conflict, json_response, not_found,
                                validation)
from control.api.routing import QueryParam, operation
from control.api.state import state
from control.providers.base import NumberInfo, Provider, ProviderError
from control.secrets import DecryptError, mask
from control.store import channel_aad, repo

bp = Blueprint("channels", __name__, url_prefix="/api/v1")
bp.before_request(require_api_key)

ERR = models.Error
COMMON = {401: ERR, 403: ERR}


def _prepare(raw) -> None:
    check_string_map(raw, "credentials")


# ----------------------------------------------------------------------------------- helpers
def _target_detail(row: repo.ChannelRow) -> str | None:
    if row.agent_id and row.flow_id:
        return "both agent_id and flow_id are set: keep exactly one"
    if not row.agent_id and not row.flow_id:
        return "assign an agent (agent_id) or a flow (flow_id)"
    return None


def _setup_detail(row: repo.ChannelRow) -> str:
    """What the operator has to do next, in words."""
    steps = []
    if row.type == "web":
        if not row.allowed_origins:
            steps.append("add at least one allowed origin (allowed_origins)")
    elif row.type == "whatsapp":
        url = state().settings.webhook_url(row.provider, row.id)
        if not row.webhook_verified_at:
            steps.append("in Meta's App Dashboard (WhatsApp > Configuration) set the Callback URL to "
                         f"{url} and the Verify token to the verify_token of this channel, then "
                         "subscribe to the 'messages' field; the channel turns active when Meta "
                         "verifies the URL")
    elif not row.phone_number:
        steps.append(f"choose a number (GET /api/v1/channels/{row.id}/numbers, then PATCH "
                     "phone_number)")
    target = _target_detail(row)
    if target:
        steps.append(target)
    if row.type in ("voice", "sms") and not steps:
        steps.append(f"POST /api/v1/channels/{row.id}/activate to configure the provider's webhook")
    return "; ".join(steps)


def _web_status(row: repo.ChannelRow) -> repo.ChannelRow:
    """A web channel is active as soon as it has one target and an allowed origin."""
    if row.status == "inactive":
        return row
    ready = row.allowed_origins and _target_detail(row) is None
    if ready:
        return msgspec.structs.replace(row, status="active", status_detail="")
    return msgspec.structs.replace(row, status="setup", status_detail=_setup_detail(row))


def _decrypt(row: repo.ChannelRow) -> dict:
    if not row.credentials:
        return {}
    try:
        return state().store.box.decrypt_json(row.credentials, channel_aad(row.id))
    except DecryptError as exc:
        raise ApiError(503, "secrets", f"stored credentials of {row.id} cannot be decrypted on "
                       f"this node ({exc}); is CONVERSE_SECRET_KEY the same on every node?") from None


def channel_out(row: repo.ChannelRow, creds: dict | None = None) -> models.ChannelOut:
    settings = state().settings
    verify_token = None
    if row.type == "whatsapp":
        verify_token = (creds if creds is not None else _decrypt(row)).get("verify_token")
    return models.ChannelOut(
        id=row.id, name=row.name, type=row.type, provider=row.provider,
        credentials=mask({k: "x" for k in row.credential_fields}) if creds is None else mask(creds),
        phone_number=row.phone_number, phone_number_id=row.phone_number_id,
        agent_id=row.agent_id, flow_id=row.flow_id, allowed_origins=list(row.allowed_origins),
        status=row.status, status_detail=row.status_detail,
        webhook_url=settings.webhook_url(row.provider, row.id) if row.provider else None,
        verify_token=verify_token, created_at=row.created_at, updated_at=row.updated_at,
        version=row.version)


async def _load(channel_id: str) -> repo.ChannelRow:
    row = await state().store.read(repo.get_channel, channel_id)
    if row is None:
        raise not_found("channel", channel_id)
    return row


async def _check_targets(agent_id: str | None, flow_id: str | None, ctype: str,
                         provider: str | None) -> None:
    store = state().store
    if agent_id is not None and await store.read(repo.get_agent, agent_id) is None:
        raise validation(f"no agent with id {agent_id!r}", "$.agent_id")
    if flow_id is not None:      # exists, and can run on this channel type/provider (422 lists why)
        await agents_flows.check_flow_for_channel(flow_id, ctype, provider)


def _check_credentials(provider: Provider, ctype: str, creds: dict) -> dict:
    required = list(provider.credential_fields)
    if ctype == "whatsapp":
        required += [f for f in models.WHATSAPP_EXTRA_FIELDS if f not in required]
    for name in required:
        if name not in creds:
            raise validation(f"missing credential field {name!r} (needed: {', '.join(required)})",
                             f"$.credentials.{name}")
    for name, value in creds.items():
        if not value.strip():
            raise validation("must not be empty", f"$.credentials.{name}")
    return creds


async def _verify(provider: Provider, creds: dict) -> None:
    try:
        await provider_calls.call(provider, "verify", creds)
    except ProviderError as exc:
        raise provider_calls.as_api_error(exc) from None


async def _resolve_number(provider: Provider, creds: dict, wanted: str) -> NumberInfo:
    """The operator names a number (or the provider's id for it); the provider must own it."""
    try:
        numbers = await provider_calls.call(provider, "list_numbers", creds)
    except ProviderError as exc:
        raise provider_calls.as_api_error(exc) from None
    for n in numbers:
        if wanted in (n.number, n.provider_id):
            return n
    raise validation(f"{provider.name} account does not own {wanted!r} "
                     "(see GET /api/v1/channels/{id}/numbers)", "$.phone_number")


async def _save(row: repo.ChannelRow) -> repo.ChannelRow:
    stored = await state().store.run(repo.update_channel, row)
    if stored is None:
        raise conflict(f"channel {row.id} was changed or deleted by another request; "
                       "read it again and retry")
    return stored


def _iso(unix_s: int) -> str:
    t = datetime.datetime.fromtimestamp(unix_s, datetime.timezone.utc)
    return t.isoformat(timespec="seconds").replace("+00:00", "Z")


# ---------------------------------------------------------------------------------- routes
@operation(bp, "POST", "/channels", summary="Create a channel (credentials verified first)",
           tag="channels", body=models.ChannelCreate, prepare=_prepare,
           responses={201: models.ChannelOut, 422: ERR, 502: ERR, 503: ERR, 504: ERR, **COMMON})
async def create_channel(body: models.ChannelCreate):
    validate.type_and_provider(body.type, body.provider)
    origins = validate.origins(body.allowed_origins)
    if body.type == "web":
        if body.credentials:
            raise validation("web channels take no credentials", "$.credentials")
        if body.phone_number is not None:
            raise validation("web channels have no phone number", "$.phone_number")
    await _check_targets(body.agent_id, body.flow_id, body.type, body.provider)
    number = None
    creds: dict = {}
    if body.provider is not None:
        provider = provider_calls.get(body.provider)
        creds = _check_credentials(provider, body.type, dict(body.credentials))
        await _verify(provider, creds)
        if body.phone_number is not None:
            number = await _resolve_number(provider, creds, body.phone_number)
    now = repo.now_iso()
    channel_id = "ch_" + _random.token_hex(8)
    row = repo.ChannelRow(
        id=channel_id, name=body.name or f"{body.type} channel", type=body.type,
        provider=body.provider,
        credentials=state().store.box.encrypt_json(creds, channel_aad(channel_id)) if creds else None,
        credential_fields=sorted(creds), phone_number=number.number if number else None,
        phone_number_id=number.provider_id if number else None, agent_id=body.agent_id,
        flow_id=body.flow_id, allowed_origins=origins, status="setup", created_at=now, updated_at=now)
    if row.type == "whatsapp":
        # Meta's phone number id is a credential; expose it like the other providers' number ids.
        row = msgspec.structs.replace(row, phone_number_id=creds.get("phone_number_id"))
    row = _web_status(row) if row.type == "web" else \
        msgspec.structs.replace(row, status_detail=_setup_detail(row))
    await state().store.run(repo.insert_channel, row)
    return json_response(channel_out(row, creds), 201)


@operation(bp, "GET", "/channels", summary="List channels", tag="channels",
           query=(QueryParam("status", {"type": "string", "enum": ["setup", "active", "inactive", "error"]}),
                  QueryParam("type", {"type": "string", "enum": ["voice", "whatsapp", "sms", "web"]})),
           responses={200: models.ChannelList, 422: ERR, **COMMON})
async def list_channels():
    status, ctype = request.args.get("status"), request.args.get("type")
    if status is not None and status not in ("setup", "active", "inactive", "error"):
        raise validation("status must be one of setup, active, inactive, error", "query.status")
    if ctype is not None and ctype not in models.PROVIDERS_BY_TYPE:
        raise validation("type must be one of voice, whatsapp, sms, web", "query.type")
    rows = await state().store.read(lambda tx: repo.list_channels(tx, status=status, type=ctype))
    return json_response(models.ChannelList([channel_out(r) for r in rows]))


@operation(bp, "GET", "/channels/{channel_id}", summary="Get a channel (secrets masked)",
           tag="channels", responses={200: models.ChannelOut, 404: ERR, **COMMON})
async def get_channel(channel_id: str):
    return json_response(channel_out(await _load(channel_id)))


@operation(bp, "GET", "/channels/{channel_id}/numbers", summary="Numbers the provider account owns",
           tag="channels",
           responses={200: models.NumberList, 404: ERR, 409: ERR, 422: ERR, 502: ERR, 504: ERR, **COMMON})
async def list_numbers(channel_id: str):
    row = await _load(channel_id)
    if row.provider is None:
        raise conflict("web channels have no phone numbers")
    provider = provider_calls.get(row.provider)
    try:
        numbers = await provider_calls.call(provider, "list_numbers", _decrypt(row))
    except ProviderError as exc:
        raise provider_calls.as_api_error(exc) from None
    items = [models.NumberOut(n.number, n.provider_id,
                              {str(k): bool(v) for k, v in (n.capabilities or {}).items()})
             for n in numbers]
    return json_response(models.NumberList(items))


@operation(bp, "PATCH", "/channels/{channel_id}", summary="Choose the number, target, origins, name",
           tag="channels", body=models.ChannelPatch, prepare=_prepare,
           responses={200: models.ChannelOut, 404: ERR, 409: ERR, 422: ERR, 502: ERR, 504: ERR, **COMMON})
async def patch_channel(channel_id: str, body: models.ChannelPatch):
    st = state()
    async with st.channel_locks[channel_id]:
        row = await _load(channel_id)
        changes: dict = {}
        if body.name is not msgspec.UNSET:
            changes["name"] = body.name
        if body.allowed_origins is not msgspec.UNSET:
            if row.type != "web" and body.allowed_origins:
                raise validation("allowed_origins apply to web channels only", "$.allowed_origins")
            changes["allowed_origins"] = validate.origins(body.allowed_origins)
        for key in ("agent_id", "flow_id"):
            if getattr(body, key) is not msgspec.UNSET:
                changes[key] = getattr(body, key)
        await _check_targets(changes.get("agent_id"), changes.get("flow_id"), row.type,
                             row.provider)

        creds = None
        rewire = False          # the provider-side configuration is now stale
        if body.credentials is not msgspec.UNSET or body.phone_number is not msgspec.UNSET:
            if row.provider is None:
                field = "$.credentials" if body.credentials is not msgspec.UNSET else "$.phone_number"
                raise validation("web channels have no credentials or phone number", field)
            provider = provider_calls.get(row.provider)
            creds = _decrypt(row)
            if body.credentials is not msgspec.UNSET:
                # Merge, so rotating one token does not mean re-typing every field.
                creds = _check_credentials(provider, row.type, {**creds, **body.credentials})
                await _verify(provider, creds)
                changes["credentials"] = st.store.box.encrypt_json(creds, channel_aad(row.id))
                changes["credential_fields"] = sorted(creds)
                rewire = True
            if body.phone_number is not msgspec.UNSET:
                if body.phone_number is None:
                    changes["phone_number"] = changes["phone_number_id"] = None
                else:
                    n = await _resolve_number(provider, creds, body.phone_number)
                    changes["phone_number"], changes["phone_number_id"] = n.number, n.provider_id
                rewire = rewire or changes["phone_number_id"] != row.phone_number_id

        new = msgspec.structs.replace(row, **changes)
        if new.type == "web":
            new = _web_status(new)
        elif new.status == "active":
            if _target_detail(new):
                raise validation("an active channel needs exactly one of agent_id and flow_id "
                                 f"({_target_detail(new)}); deactivate it first to change that",
                                 "$.agent_id", fields=["$.agent_id", "$.flow_id"])
            if rewire and new.type != "whatsapp":
                new = msgspec.structs.replace(new, status="setup", status_detail=
                                              "number or credentials changed: activate again to "
                                              "update the webhook at the provider")
        elif new.status == "setup":
            new = msgspec.structs.replace(new, status_detail=_setup_detail(new))
        saved = await _save(new)
    return json_response(channel_out(saved, creds))


@operation(bp, "POST", "/channels/{channel_id}/activate",
           summary="Save: configure the provider's webhook and go active", tag="channels",
           responses={200: models.ChannelOut, 404: ERR, 409: ERR, 422: ERR, 502: ERR, 504: ERR, **COMMON})
async def activate_channel(channel_id: str):
    st = state()
    async with st.channel_locks[channel_id]:
        row = await _load(channel_id)
        problem = _target_detail(row)
        if problem:
            raise validation(f"exactly one of agent_id and flow_id must be set: {problem}",
                             "$.agent_id", fields=["$.agent_id", "$.flow_id"])
        if row.type == "web":
            if not row.allowed_origins:
                raise validation("a web channel needs at least one allowed origin",
                                 "$.allowed_origins")
            saved = await _save(msgspec.structs.replace(row, status="active", status_detail=""))
            return json_response(channel_out(saved))
        if row.type == "whatsapp":
            # Meta cannot be configured by API: active once Meta's handshake has succeeded.
            if row.webhook_verified_at:
                new = msgspec.structs.replace(row, status="active", status_detail="")
            else:
                new = msgspec.structs.replace(row, status="setup")
                new = msgspec.structs.replace(new, status_detail=_setup_detail(new))
            return json_response(channel_out(await _save(new)))
        if not row.phone_number:
            raise validation("choose a number first (PATCH phone_number)", "$.phone_number")
        provider = provider_calls.get(row.provider)
        creds = _decrypt(row)
        number = NumberInfo(number=row.phone_number, provider_id=row.phone_number_id or "")
        url = st.settings.webhook_url(row.provider, row.id)
        if row.provider == "exotel":   # no signatures: the applet URL carries the channel's media key
            from control.api.voice_webhooks import exotel_applet_url
            url = exotel_applet_url(st.settings, row.id)
        try:
            result = await provider_calls.call(provider, "configure_webhook", creds, number, url, row.type)
        except ProviderError as exc:
            await _save(msgspec.structs.replace(
                row, status="error", status_detail=f"{exc.provider}: {exc.message} "
                f"(fix it, then POST /api/v1/channels/{row.id}/verify and activate again)"))
            raise provider_calls.as_api_error(exc) from None
        if result.configured:
            new = msgspec.structs.replace(row, status="active", status_detail="")
        else:
            new = msgspec.structs.replace(row, status="setup", status_detail=result.detail or
                                          f"configure {url} as the webhook at {row.provider} by hand")
        saved = await _save(new)
    return json_response(channel_out(saved, creds))


@operation(bp, "POST", "/channels/{channel_id}/deactivate",
           summary="Take the line out of service (webhooks answer politely, sessions refused)",
           tag="channels", responses={200: models.ChannelOut, 404: ERR, 409: ERR, **COMMON})
async def deactivate_channel(channel_id: str):
    async with state().channel_locks[channel_id]:
        row = await _load(channel_id)
        saved = await _save(msgspec.structs.replace(
            row, status="inactive", status_detail="deactivated by the operator; activate to resume"))
    return json_response(channel_out(saved))


@operation(bp, "POST", "/channels/{channel_id}/verify",
           summary="Re-verify the stored credentials with the provider", tag="channels",
           responses={200: models.ChannelOut, 404: ERR, 409: ERR, 422: ERR, 502: ERR, 504: ERR, **COMMON})
async def verify_channel(channel_id: str):
    async with state().channel_locks[channel_id]:
        row = await _load(channel_id)
        if row.provider is None:
            raise conflict("web channels have no provider credentials to verify")
        provider = provider_calls.get(row.provider)
        creds = _decrypt(row)
        try:
            await provider_calls.call(provider, "verify", creds)
        except ProviderError as exc:
            await _save(msgspec.structs.replace(row, status="error",
                                                status_detail=f"{exc.provider}: {exc.message}"))
            raise provider_calls.as_api_error(exc) from None
        if row.status == "error":
            new = msgspec.structs.replace(row, status="setup")
            row = await _save(msgspec.structs.replace(
                new, status_detail="credentials verified; " + (_setup_detail(new) or "activate again")))
    return json_response(channel_out(row, creds))


@operation(bp, "DELETE", "/channels/{channel_id}",
           summary="Remove the webhook at the provider (best effort, reported) and the channel",
           tag="channels", responses={200: models.DeleteResult, 404: ERR, **COMMON})
async def delete_channel(channel_id: str):
    st = state()
    async with st.channel_locks[channel_id]:
        row = await _load(channel_id)
        removed, detail = None, ""
        if row.provider is not None and (row.phone_number or row.type == "whatsapp"):
            try:
                provider = provider_calls.get(row.provider)
                number = NumberInfo(number=row.phone_number or "", provider_id=row.phone_number_id or "")
                result = await provider_calls.call(provider, "remove_webhook", _decrypt(row),
                                                   number, row.type)
                removed, detail = result.configured, result.detail
            except ProviderError as exc:
                removed, detail = False, f"{exc.provider}: {exc.message}"
            except ApiError as exc:
                removed, detail = False, exc.body.message
        await st.store.run(repo.delete_channel, row.id)
    st.channel_locks.pop(channel_id, None)
    return json_response(models.DeleteResult(deleted=True, webhook_removed=removed, detail=detail))


@operation(bp, "POST", "/channels/{channel_id}/session-url",
           summary="A short-lived signed WebSocket URL for the web widget", tag="channels",
           body=models.SessionUrlRequest, body_required=False,
           responses={200: models.SessionUrlOut, 404: ERR, 409: ERR, 422: ERR, **COMMON})
async def session_url(channel_id: str, body: models.SessionUrlRequest):
    from gateway import tokens

    row = await _load(channel_id)
    if row.type != "web":
        raise conflict("session URLs are for web channels")
    if row.status != "active":
        raise conflict(f"channel is {row.status}: {row.status_detail or 'activate it first'}")
    kind, target = ("agent", row.agent_id) if row.agent_id else ("flow", row.flow_id)
    settings = state().settings
    ttl = body.ttl_s or settings.session_ttl_s
    now = int(time.time())
    token = tokens.issue(settings.token_secret, "web", ttl, now=now, ch=row.id,
                         target=f"{kind}:{target}")
    url = f"{settings.gateway_public_url}/ws/{kind}/{target}?token={token}"
    return json_response(models.SessionUrlOut(url=url, expires_at=_iso(now + ttl)))
