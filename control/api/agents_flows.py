"""/api/v1/agents and /api/v1/flows: plain CRUD. Deleting one a channel still uses is a 409 that
names the channels."""
from __future__ import annotations

import datetime
import secrets as _random
from typing import Annotated, Any, Literal

import msgspec
from quart import Blueprint

from control import models
from control.api import validate
from control.api.auth import require_api_key
from control.api.errors import ApiError, check_string_map, convert, json_response, not_found, validation
from control.api.routing import operation
from control.api.state import state
from control.secrets import mask, mask_value
from control.store import agent_secrets, repo
from gateway import flows

bp = Blueprint("agents_flows", __name__, url_prefix="/api/v1")
bp.before_request(require_api_key)

ERR = models.Error
COMMON = {401: ERR, 403: ERR}


# -------------------------------------------------------------------------------------- agents
def _prepare_agent(raw) -> None:
    if isinstance(raw, dict):
        check_string_map(raw.get("config"), "headers", prefix="$.config")


def _agent_config(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """Validate the config for its kind; return it normalised (defaults filled in)."""
    typed = convert(config, models.AGENT_CONFIG_TYPES[kind], prefix="$.config")
    if kind == "websocket":
        validate.url(typed.url, ("ws", "wss"), "$.config.url")
    elif kind == "http":
        validate.url(typed.url, ("http", "https"), "$.config.url")
    return msgspec.to_builtins(typed)


def _clear_config(row: repo.AgentRow) -> dict[str, Any]:
    try:
        return agent_secrets.clear_config(state().store.box, row)
    except agent_secrets.DecryptError:
        raise ApiError(500, "secret_unreadable", f"agent {row.id}'s headers do not decrypt with "
                       "this node's secret key (was the key rotated without it?)") from None


def _keep_stored_headers(kind: str, incoming: dict[str, Any], stored: dict[str, Any]) -> dict:
    """Headers are write-only: a PATCH config without ``headers`` keeps the stored ones, and a
    value sent back exactly as GET masked it keeps the stored value (``"headers": {}`` clears)."""
    old = stored.get("headers") if isinstance(stored.get("headers"), dict) else {}
    if not old or "headers" not in models.AGENT_CONFIG_TYPES[kind].__struct_fields__:
        return incoming
    new = incoming.get("headers", old)
    if isinstance(new, dict):
        new = {k: old[k] if k in old and v == mask_value(old[k]) else v for k, v in new.items()}
    return {**incoming, "headers": new}


def _agent_out(row: repo.AgentRow) -> models.AgentOut:
    config = _clear_config(row)
    if isinstance(config.get("headers"), dict):
        # Headers usually carry the agent server's API key: write-only, like credentials.
        config["headers"] = mask(config["headers"])
    return models.AgentOut(id=row.id, name=row.name, kind=row.kind, config=config,
                           created_at=row.created_at, updated_at=row.updated_at)


async def _agent(agent_id: str) -> repo.AgentRow:
    row = await state().store.read(repo.get_agent, agent_id)
    if row is None:
        raise not_found("agent", agent_id)
    return row


@operation(bp, "POST", "/agents", summary="Create an agent", tag="agents", body=models.AgentCreate,
           prepare=_prepare_agent, responses={201: models.AgentOut, 422: ERR, **COMMON})
async def create_agent(body: models.AgentCreate):
    now = repo.now_iso()
    agent_id = "ag_" + _random.token_hex(8)
    config, secret = agent_secrets.seal(state().store.box, agent_id,
                                        _agent_config(body.kind, body.config))
    row = repo.AgentRow(id=agent_id, name=body.name, kind=body.kind, config=config,
                        secret_config=secret, created_at=now, updated_at=now)
    await state().store.run(repo.insert_agent, row)
    return json_response(_agent_out(row), 201)


@operation(bp, "GET", "/agents", summary="List agents", tag="agents",
           responses={200: models.AgentList, **COMMON})
async def list_agents():
    rows = await state().store.read(repo.list_agents)
    return json_response(models.AgentList([_agent_out(r) for r in rows]))


@operation(bp, "GET", "/agents/{agent_id}", summary="Get an agent", tag="agents",
           responses={200: models.AgentOut, 404: ERR, **COMMON})
async def get_agent(agent_id: str):
    return json_response(_agent_out(await _agent(agent_id)))


@operation(bp, "PATCH", "/agents/{agent_id}", summary="Rename or reconfigure an agent", tag="agents",
           body=models.AgentPatch, prepare=_prepare_agent,
           responses={200: models.AgentOut, 404: ERR, 422: ERR, **COMMON})
async def patch_agent(agent_id: str, body: models.AgentPatch):
    row = await _agent(agent_id)
    stored = _clear_config(row)
    kind = row.kind if body.kind is msgspec.UNSET else body.kind
    if body.config is not msgspec.UNSET:
        config = _agent_config(kind, _keep_stored_headers(kind, body.config, stored))
    elif kind != row.kind:
        config = _agent_config(kind, {})   # changing kind needs that kind's config
    else:
        config = stored
    name = row.name if body.name is msgspec.UNSET else body.name
    public, secret = agent_secrets.seal(state().store.box, row.id, config)
    new = msgspec.structs.replace(row, name=name, kind=kind, config=public, secret_config=secret)
    saved = await state().store.run(repo.update_agent, new)
    if saved is None:
        raise not_found("agent", agent_id)
    return json_response(_agent_out(saved))


async def _delete(kind: str, target_id: str):
    result = await state().store.run(repo.delete_target, kind, target_id)
    if result is False:
        raise not_found(kind, target_id)
    if isinstance(result, list):
        raise ApiError(409, "conflict", f"{kind} {target_id} is still assigned to channel(s) "
                       f"{', '.join(result)}; reassign them first", channels=result)
    return "", 204


@operation(bp, "DELETE", "/agents/{agent_id}", summary="Delete an agent no channel uses",
           tag="agents", responses={204: None, 404: ERR, 409: ERR, **COMMON})
async def delete_agent(agent_id: str):
    return await _delete("agent", agent_id)


# --------------------------------------------------------------------------------------- flows
class FlowProblem(msgspec.Struct, kw_only=True):
    node: str | None          # the node the problem is about (None: the whole flow)
    path: str                 # JSON path in the request body, e.g. $.definition.nodes.menu.options
    message: str


class FlowInvalid(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A 422: the usual error fields, plus every problem found when a flow definition is at
    fault (``errors``; absent for other 422s, e.g. a body that is not JSON)."""
    error: str
    message: str
    field: str | None = None
    fields: list[str] | None = None
    errors: list[FlowProblem] | None = None


class FlowInvalidError(ApiError):
    def __init__(self, exc, prefix: str, context: str = "", field: str | None = None):
        problems = [FlowProblem(**p) for p in flows.errors_as_json(exc, prefix=prefix)]
        first = problems[0]
        field = field or first.path
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        where = f"{first.path}: " if field != first.path else ""
        super().__init__(422, "validation", f"{context}{where}{first.message}{more}", field=field)
        self.body = FlowInvalid(error="validation", message=self.body.message, field=field,
                                errors=problems)


def _tts_available() -> bool:
    from gateway import tts
    try:
        return tts.config_available(tts.TtsConfig.from_env())
    except ValueError:
        return False


def parse_flow(definition: dict[str, Any], name: str, *, prefix: str = "$.definition",
               context: str = "", field: str | None = None, **channel) -> flows.Flow:
    """The definition checked by the flow engine's ``validate`` (``channel``: its channel-aware
    keywords); a 422 listing every problem as {node, path, message} otherwise (paths into the
    definition under ``prefix``; ``field`` names the request field to blame, default the first
    problem's path)."""
    try:
        return flows.validate(dict(definition, name=name), **channel)
    except flows.FlowValidationError as exc:
        raise FlowInvalidError(exc, prefix, context, field) from None


def validate_flow_definition(definition: dict[str, Any], name: str = "flow") -> flows.Flow:
    return parse_flow(definition, name)


async def check_flow_for_channel(flow_id: str, ctype: str, provider: str | None,
                                 *, field: str = "$.flow_id", row: repo.FlowRow | None = None,
                                 channel_id: str | None = None) -> None:
    """A flow assigned to a channel must run there: its type/provider (transfers, keypad-only
    input, speech needing TTS), agents and SMS channels that exist."""
    store = state().store
    row = row or await store.read(repo.get_flow, flow_id)
    if row is None:
        raise validation(f"no flow with id {flow_id!r}", field)
    agents = [a.id for a in await store.read(repo.list_agents)]
    sms = [c.id for c in await store.read(lambda tx: repo.list_channels(tx, type="sms"))]
    on = f"channel {channel_id}" if channel_id else f"this {ctype} channel"
    parse_flow(row.definition, row.name, field=field,
               context=f"flow {flow_id} cannot run on {on}: ",
               channel_type=ctype, provider=provider, tts_available=_tts_available(),
               speech_input=False, agent_ids=agents, sms_channel_ids=sms)


async def _check_channels_using(row: repo.FlowRow) -> None:
    """A changed definition must still fit every channel it is assigned to."""
    store = state().store
    for channel_id in await store.read(repo.channels_using, "flow", row.id):
        channel = await store.read(repo.get_channel, channel_id)
        if channel is not None:
            await check_flow_for_channel(row.id, channel.type, channel.provider, row=row,
                                         field="$.definition", channel_id=channel.id)


def _flow_out(row: repo.FlowRow) -> models.FlowOut:
    return models.FlowOut(id=row.id, name=row.name, definition=row.definition,
                          created_at=row.created_at, updated_at=row.updated_at)


async def _flow(flow_id: str) -> repo.FlowRow:
    row = await state().store.read(repo.get_flow, flow_id)
    if row is None:
        raise not_found("flow", flow_id)
    return row


@operation(bp, "POST", "/flows", summary="Create a flow (validated: 422 lists every problem)",
           tag="flows", body=models.FlowCreate,
           responses={201: models.FlowOut, 422: FlowInvalid, **COMMON})
async def create_flow(body: models.FlowCreate):
    validate_flow_definition(body.definition, body.name)
    now = repo.now_iso()
    row = repo.FlowRow(id="fl_" + _random.token_hex(8), name=body.name, definition=body.definition,
                       created_at=now, updated_at=now)
    await state().store.run(repo.insert_flow, row)
    return json_response(_flow_out(row), 201)


@operation(bp, "GET", "/flows", summary="List flows", tag="flows",
           responses={200: models.FlowList, **COMMON})
async def list_flows():
    rows = await state().store.read(repo.list_flows)
    return json_response(models.FlowList([_flow_out(r) for r in rows]))


@operation(bp, "GET", "/flows/{flow_id}", summary="Get a flow", tag="flows",
           responses={200: models.FlowOut, 404: ERR, **COMMON})
async def get_flow(flow_id: str):
    return json_response(_flow_out(await _flow(flow_id)))


@operation(bp, "PATCH", "/flows/{flow_id}", summary="Rename or replace a flow's definition",
           tag="flows", body=models.FlowPatch,
           responses={200: models.FlowOut, 404: ERR, 422: FlowInvalid, **COMMON})
async def patch_flow(flow_id: str, body: models.FlowPatch):
    row = await _flow(flow_id)
    if body.name is not msgspec.UNSET:
        row = msgspec.structs.replace(row, name=body.name)
    if body.definition is not msgspec.UNSET:
        validate_flow_definition(body.definition, row.name)
        row = msgspec.structs.replace(row, definition=body.definition)
        await _check_channels_using(row)
    saved = await state().store.run(repo.update_flow, row)
    if saved is None:
        raise not_found("flow", flow_id)
    return json_response(_flow_out(saved))


@operation(bp, "DELETE", "/flows/{flow_id}", summary="Delete a flow no channel uses", tag="flows",
           responses={204: None, 404: ERR, 409: ERR, **COMMON})
async def delete_flow(flow_id: str):
    return await _delete("flow", flow_id)


# ------------------------------------------------------------------------------------ simulate
class FlowSimulate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A scripted run: ``inputs`` are {"text"} | {"digits"} | {"utterance"} | {"timeout": true} |
    {"api": {status, body, error}} | {"category"}, each optionally with "at" (ISO time)."""
    inputs: Annotated[list[dict[str, Any]], msgspec.Meta(max_length=200)] = []
    channel_type: Literal["web", "voice", "whatsapp", "sms"] = "web"
    provider: Literal["twilio", "plivo", "exotel", "meta"] | None = None
    caller: Annotated[str, msgspec.Meta(max_length=256)] = ""
    variables: dict[str, Any] = {}
    speech_input: bool = False
    include_timers: bool = False
    now: datetime.datetime | None = None


class FlowSimulation(msgspec.Struct, kw_only=True):
    transcript: list[dict[str, Any]]      # {"input": {...}} and {"action": {"type", ...}} in order
    done: bool
    end_reason: str | None
    node: str | None
    variables: dict[str, Any]


@operation(bp, "POST", "/flows/{flow_id}/simulate",
           summary="Run a flow against scripted inputs; returns the transcript of actions",
           tag="flows", body=FlowSimulate,
           responses={200: FlowSimulation, 404: ERR, 422: FlowInvalid, **COMMON})
async def simulate_flow(flow_id: str, body: FlowSimulate):
    row = await _flow(flow_id)
    flow = parse_flow(row.definition, row.name, prefix="$.definition",
                      context=f"the stored flow {flow_id} is not valid: ")
    voice = body.channel_type == "voice"
    context = flows.FlowContext(channel_id="simulation", channel_type=body.channel_type,
                                caller=body.caller, provider=body.provider if voice else None,
                                variables=body.variables, speech_input=body.speech_input)
    now = body.now or datetime.datetime.now(datetime.timezone.utc)
    try:
        result = flows.simulate(flow, body.inputs, context=context, now=now,
                                include_timers=body.include_timers)
    except flows.SimulationError as exc:
        raise validation(str(exc), "$.inputs") from None
    except ValueError as exc:                       # initial variables that are not JSON values
        raise validation(str(exc), "$.variables") from None
    return json_response(FlowSimulation(transcript=result.transcript, done=result.done,
                                        end_reason=result.end_reason, node=result.node,
                                        variables=result.variables))
