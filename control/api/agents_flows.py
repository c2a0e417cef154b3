"""/api/v1/agents and /api/v1/flows: plain CRUD. Deleting one a channel still uses is a 409 that
names the channels."""
from __future__ import annotations

import secrets as _random
from typing import Any

import msgspec
from quart import Blueprint

from control import models
from control.api import validate
from control.api.auth import require_api_key
from control.api.errors import ApiError, check_string_map, convert, json_response, not_found, validation
from control.api.routing import operation
from control.api.state import state
from control.secrets import mask
from control.store import repo

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


def _agent_out(row: repo.AgentRow) -> models.AgentOut:
    config = dict(row.config)
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
    row = repo.AgentRow(id="ag_" + _random.token_hex(8), name=body.name, kind=body.kind,
                        config=_agent_config(body.kind, body.config), created_at=now, updated_at=now)
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
    kind = row.kind if body.kind is msgspec.UNSET else body.kind
    if body.config is not msgspec.UNSET:
        config = _agent_config(kind, body.config)
    elif kind != row.kind:
        config = _agent_config(kind, {})   # changing kind needs that kind's config
    else:
        config = row.config
    name = row.name if body.name is msgspec.UNSET else body.name
    new = msgspec.structs.replace(row, name=name, kind=kind, config=config)
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
def validate_flow_definition(definition: dict[str, Any]) -> None:
    """Until the flow engine's ``gateway.flows.validate()`` is plugged in here: an object whose
    ``nodes`` member is a list or an object."""
    if "nodes" not in definition:
        raise validation("a flow definition needs a 'nodes' member", "$.definition.nodes")
    if not isinstance(definition["nodes"], (list, dict)):
        raise validation("'nodes' must be a list or an object", "$.definition.nodes")


def _flow_out(row: repo.FlowRow) -> models.FlowOut:
    return models.FlowOut(id=row.id, name=row.name, definition=row.definition,
                          created_at=row.created_at, updated_at=row.updated_at)


async def _flow(flow_id: str) -> repo.FlowRow:
    row = await state().store.read(repo.get_flow, flow_id)
    if row is None:
        raise not_found("flow", flow_id)
    return row


@operation(bp, "POST", "/flows", summary="Create a flow", tag="flows", body=models.FlowCreate,
           responses={201: models.FlowOut, 422: ERR, **COMMON})
async def create_flow(body: models.FlowCreate):
    validate_flow_definition(body.definition)
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
           responses={200: models.FlowOut, 404: ERR, 422: ERR, **COMMON})
async def patch_flow(flow_id: str, body: models.FlowPatch):
    row = await _flow(flow_id)
    if body.definition is not msgspec.UNSET:
        validate_flow_definition(body.definition)
        row = msgspec.structs.replace(row, definition=body.definition)
    if body.name is not msgspec.UNSET:
        row = msgspec.structs.replace(row, name=body.name)
    saved = await state().store.run(repo.update_flow, row)
    if saved is None:
        raise not_found("flow", flow_id)
    return json_response(_flow_out(saved))


@operation(bp, "DELETE", "/flows/{flow_id}", summary="Delete a flow no channel uses", tag="flows",
           responses={204: None, 404: ERR, 409: ERR, **COMMON})
async def delete_flow(flow_id: str):
    return await _delete("flow", flow_id)
