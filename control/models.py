"""msgspec Structs for every API body, in and out. The OpenAPI document is generated from these,
so what is validated and what is documented cannot drift apart.

Input Structs forbid unknown fields (a typo is a 422 naming the field, not silently ignored).
PATCH bodies use ``UNSET`` to tell "not given" from an explicit ``null`` (which clears a field).
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

ChannelType = Literal["voice", "whatsapp", "sms", "web"]
ChannelStatus = Literal["setup", "active", "inactive", "error"]
AgentKind = Literal["echo", "websocket", "http"]

Name = Annotated[str, Meta(min_length=1, max_length=200)]
Id = Annotated[str, Meta(min_length=1, max_length=64)]
ShortText = Annotated[str, Meta(max_length=4096)]
Origin = Annotated[str, Meta(min_length=1, max_length=512,
                             description="scheme://host[:port], http or https, no path")]
Origins = Annotated[list[Origin], Meta(max_length=100)]
Credentials = Annotated[dict[Annotated[str, Meta(min_length=1, max_length=64)], ShortText],
                        Meta(max_length=32, description="write-only; returned masked")]

# Which providers serve which channel type. Web channels have no provider.
PROVIDERS_BY_TYPE: dict[str, tuple[str, ...]] = {
    "voice": ("twilio", "plivo", "exotel"),
    "whatsapp": ("meta",),
    "sms": ("twilio",),
    "web": (),
}
# Fields the operator always supplies for WhatsApp on top of the provider's own credential fields.
WHATSAPP_EXTRA_FIELDS = ("verify_token", "app_secret")


class _In(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


# ------------------------------------------------------------------------------------ channels
class ChannelCreate(_In):
    type: ChannelType
    provider: Annotated[str, Meta(max_length=32)] | None = None
    name: Name | None = None
    credentials: Credentials = {}
    phone_number: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    agent_id: Id | None = None
    flow_id: Id | None = None
    allowed_origins: Origins = []


class ChannelPatch(_In):
    name: Name | UnsetType = UNSET
    credentials: Credentials | UnsetType = UNSET
    phone_number: Annotated[str, Meta(min_length=1, max_length=64)] | None | UnsetType = UNSET
    agent_id: Id | None | UnsetType = UNSET
    flow_id: Id | None | UnsetType = UNSET
    allowed_origins: Origins | UnsetType = UNSET


class ChannelOut(msgspec.Struct, kw_only=True):
    id: str
    name: str
    type: ChannelType
    provider: str | None
    credentials: dict[str, str] = msgspec.field(default_factory=dict)
    phone_number: str | None = None
    phone_number_id: str | None = None
    agent_id: str | None = None
    flow_id: str | None = None
    allowed_origins: list[str] = msgspec.field(default_factory=list)
    status: ChannelStatus
    status_detail: str = ""
    webhook_url: str | None = None
    # WhatsApp only: the token the operator chose and pastes into Meta's dashboard with the URL.
    verify_token: str | None = None
    created_at: str
    updated_at: str
    version: int


class ChannelList(msgspec.Struct):
    items: list[ChannelOut]


class NumberOut(msgspec.Struct):
    number: str
    provider_id: str
    capabilities: dict[str, bool]


class NumberList(msgspec.Struct):
    items: list[NumberOut]


class DeleteResult(msgspec.Struct, kw_only=True):
    deleted: bool
    webhook_removed: bool | None = None   # None: there was nothing to remove
    detail: str = ""


class SessionUrlRequest(_In):
    ttl_s: Annotated[int, Meta(ge=10, le=3600)] | None = None   # default: CONVERSE_SESSION_TTL_S


class SessionUrlOut(msgspec.Struct):
    url: str
    expires_at: str


# -------------------------------------------------------------------------------------- agents
class WebsocketAgentConfig(_In):
    url: Annotated[str, Meta(min_length=1, max_length=2048, description="ws:// or wss://")]
    headers: dict[Annotated[str, Meta(min_length=1, max_length=128)], ShortText] = {}


class HttpAgentConfig(_In):
    url: Annotated[str, Meta(min_length=1, max_length=2048, description="http:// or https://")]
    headers: dict[Annotated[str, Meta(min_length=1, max_length=128)], ShortText] = {}
    timeout_s: Annotated[float, Meta(gt=0, le=120)] = 10.0


AGENT_CONFIG_TYPES: dict[str, type] = {
    "echo": dict[str, Any],
    "websocket": WebsocketAgentConfig,
    "http": HttpAgentConfig,
}


class AgentCreate(_In):
    name: Name
    kind: AgentKind
    config: dict[str, Any] = {}


class AgentPatch(_In):
    name: Name | UnsetType = UNSET
    kind: AgentKind | UnsetType = UNSET
    config: dict[str, Any] | UnsetType = UNSET


class AgentOut(msgspec.Struct, kw_only=True):
    id: str
    name: str
    kind: AgentKind
    config: dict[str, Any]       # header values are masked
    created_at: str
    updated_at: str


class AgentList(msgspec.Struct):
    items: list[AgentOut]


# --------------------------------------------------------------------------------------- flows
FlowDefinition = Annotated[dict[str, Any], Meta(
    description="the flow engine's format: {name, start, nodes: {ID: {...}}}; must have 'nodes'")]


class FlowCreate(_In):
    name: Name
    definition: FlowDefinition


class FlowPatch(_In):
    name: Name | UnsetType = UNSET
    definition: FlowDefinition | UnsetType = UNSET


class FlowOut(msgspec.Struct, kw_only=True):
    id: str
    name: str
    definition: dict[str, Any]
    created_at: str
    updated_at: str


class FlowList(msgspec.Struct):
    items: list[FlowOut]


# ---------------------------------------------------------------------------------------- keys
class KeyCreate(_In):
    name: Name


class KeyOut(msgspec.Struct, kw_only=True):
    id: str
    name: str
    prefix: str
    created_at: str
    revoked_at: str | None = None


class KeyCreated(msgspec.Struct, kw_only=True):
    id: str
    name: str
    key: str          # shown once


class KeyList(msgspec.Struct):
    items: list[KeyOut]


# -------------------------------------------------------------------------------------- misc
class Error(msgspec.Struct, kw_only=True, omit_defaults=True):
    error: str
    message: str
    field: str | None = None
    provider: str | None = None
    fields: list[str] | None = None       # when a rule involves several fields
    channels: list[str] | None = None


class Health(msgspec.Struct):
    status: str
    database: str
