"""The flow format: msgspec Structs for a flow and every node type, plus the graph facts about them.

These Structs describe a flow that already passed :func:`gateway.flows.validate.validate`; build
them through it (it reports every problem with a precise path) rather than with ``msgspec.convert``
directly. They are frozen so one parsed flow can be shared by every session that runs it.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union

import msgspec
from msgspec import Meta

# Size bounds: a flow is operator input, stored and replayed for every call: everything is capped.
MAX_NODES = 500
MAX_TEXT = 2000                  # prompts and messages (a TTS prompt longer than this is a mistake)
MAX_REGEX = 500
MAX_URL = 2000
MAX_BODY_BYTES = 16 * 1024       # api_call body after JSON encoding

NodeId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
VarName = Annotated[str, Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
# A variable reference in a condition: a name, optionally followed by dict keys / list indices.
VarPath = Annotated[str, Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}(\.[A-Za-z0-9_-]{1,64}){0,8}$")]
Text = Annotated[str, Meta(max_length=MAX_TEXT)]
NonEmptyText = Annotated[str, Meta(min_length=1, max_length=MAX_TEXT)]
Regex = Annotated[str, Meta(min_length=1, max_length=MAX_REGEX)]
DtmfKey = Annotated[str, Meta(pattern=r"^[0-9*#]$")]
HHMM = Annotated[str, Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
HeaderName = Annotated[str, Meta(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")]
Label = Annotated[str, Meta(max_length=200)]
Scalar = Union[str, int, float, bool]

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class _Node(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True,
            tag_field="type"):
    # Free-form fields a visual editor keeps on a node (a caption, canvas coordinates): ignored.
    label: Label | None = None
    ui: dict[str, Any] | None = None


class EntryNode(_Node, tag="entry"):
    next: NodeId


class SpeakNode(_Node, tag="speak"):
    text: NonEmptyText
    next: NodeId
    interruptible: bool = True


class DtmfMenuNode(_Node, tag="dtmf_menu"):
    prompt: NonEmptyText
    options: Annotated[dict[DtmfKey, NodeId], Meta(min_length=1)]
    timeout_s: Annotated[float, Meta(gt=0, le=60)] = 5.0
    retries: Annotated[int, Meta(ge=0, le=5)] = 2
    invalid: NodeId | None = None          # after the retries, on a wrong key
    timeout: NodeId | None = None          # after the retries, on no key (falls back to `invalid`)
    invalid_prompt: Text = "Sorry, that is not a valid option."
    timeout_prompt: Text = ""              # said before the prompt is repeated after a timeout
    interruptible: bool = True


class CollectValue(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: VarName
    prompt: NonEmptyText
    validation: Literal["any", "digits", "email", "regex"] = "any"
    pattern: Regex | None = None           # required when validation == "regex" (full match)
    min_length: Annotated[int, Meta(ge=1, le=256)] = 1
    max_length: Annotated[int, Meta(ge=1, le=256)] | None = None   # DTMF: submit at this length
    retry_prompt: Text | None = None


class CollectNode(_Node, tag="collect"):
    values: Annotated[list[CollectValue], Meta(min_length=1, max_length=10)]
    next: NodeId
    mode: Literal["auto", "dtmf", "speech", "text"] = "auto"
    timeout_s: Annotated[float, Meta(gt=0, le=120)] = 8.0
    max_retries: Annotated[int, Meta(ge=0, le=5)] = 2
    failure: NodeId | None = None
    retry_prompt: Text | None = None
    interruptible: bool = True


class Rule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    op: Literal["equals", "not_equals", "in", "regex", "exists", "lt", "le", "gt", "ge",
                "time_between"]
    next: NodeId
    var: VarPath | None = None
    value: Scalar | Annotated[list[Scalar], Meta(max_length=100)] | None = None
    from_: HHMM | None = msgspec.field(default=None, name="from")
    to: HHMM | None = None
    days: Annotated[list[Weekday], Meta(min_length=1, max_length=7)] | None = None
    ignore_case: bool = False
    negate: bool = False


class ConditionNode(_Node, tag="condition"):
    rules: Annotated[list[Rule], Meta(min_length=1, max_length=50)]
    default: NodeId


class ApiCallNode(_Node, tag="api_call"):
    url: Annotated[str, Meta(min_length=1, max_length=MAX_URL)]
    success: NodeId
    error: NodeId
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    headers: Annotated[dict[HeaderName, Annotated[str, Meta(max_length=MAX_URL)]],
                       Meta(max_length=30)] = {}
    body: Any = None                       # JSON value (its strings are templates) or None
    timeout_s: Annotated[float, Meta(gt=0, le=30)] = 5.0
    extract: Annotated[dict[VarName, Annotated[str, Meta(min_length=1, max_length=200)]],
                       Meta(max_length=30)] = {}


class Category(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    next: NodeId
    keywords: Annotated[list[Annotated[str, Meta(min_length=1, max_length=100)]],
                        Meta(max_length=100)] = []
    regex: Regex | None = None


class ClassifyNode(_Node, tag="classify"):
    categories: Annotated[list[Category], Meta(min_length=1, max_length=50)]
    default: NodeId
    input: Literal["next", "last"] = "next"   # wait for the next utterance/message, or use the last
    prompt: Text = ""
    url: Annotated[str, Meta(max_length=MAX_URL)] | None = None   # external classifier (host calls)
    timeout_s: Annotated[float, Meta(gt=0, le=120)] = 8.0         # no-input timeout (voice)
    classifier_timeout_s: Annotated[float, Meta(gt=0, le=30)] = 5.0
    interruptible: bool = True


class AgentNode(_Node, tag="agent"):
    agent_id: Annotated[str, Meta(min_length=1, max_length=128)]
    variables: Annotated[list[VarName], Meta(max_length=100)] | None = None   # None: all of them


class TransferNode(_Node, tag="transfer"):
    number: Annotated[str, Meta(min_length=1, max_length=200)]
    message: Text = ""


class SmsNode(_Node, tag="sms"):
    channel_id: Annotated[str, Meta(min_length=1, max_length=128)]
    text: NonEmptyText
    next: NodeId
    to: Annotated[str, Meta(min_length=1, max_length=200)] = "{{caller}}"


class EndNode(_Node, tag="end"):
    message: Text = ""
    reason: Annotated[str, Meta(pattern=r"^[a-z0-9_]{1,40}$")] = "completed"


Node = Union[EntryNode, SpeakNode, DtmfMenuNode, CollectNode, ConditionNode, ApiCallNode,
             ClassifyNode, AgentNode, TransferNode, SmsNode, EndNode]

NODE_TYPES: dict[str, type] = {
    cls.__struct_config__.tag: cls
    for cls in (EntryNode, SpeakNode, DtmfMenuNode, CollectNode, ConditionNode, ApiCallNode,
                ClassifyNode, AgentNode, TransferNode, SmsNode, EndNode)
}


class Flow(msgspec.Struct, frozen=True, kw_only=True):
    start: str
    name: str = "flow"
    nodes: dict[str, Node]
    timezone: str | None = None            # IANA name; `now` and time windows use it (UTC if None)
    variables: dict[str, str] = {}         # declared variables with their default values
    description: str = ""


def edges(node: Node) -> list[tuple[str, str]]:
    """Every outgoing edge of ``node`` as (path below the node, target id), in a stable order."""
    out: list[tuple[str, str | None]] = []
    if isinstance(node, (EntryNode, SpeakNode, SmsNode)):
        out.append(("next", node.next))
    elif isinstance(node, DtmfMenuNode):
        out += [(f"options.{k}", v) for k, v in node.options.items()]
        out += [("invalid", node.invalid), ("timeout", node.timeout)]
    elif isinstance(node, CollectNode):
        out += [("next", node.next), ("failure", node.failure)]
    elif isinstance(node, ConditionNode):
        out += [(f"rules.{i}.next", r.next) for i, r in enumerate(node.rules)]
        out.append(("default", node.default))
    elif isinstance(node, ApiCallNode):
        out += [("success", node.success), ("error", node.error)]
    elif isinstance(node, ClassifyNode):
        out += [(f"categories.{i}.next", c.next) for i, c in enumerate(node.categories)]
        out.append(("default", node.default))
    return [(p, t) for p, t in out if t is not None]


def waits_for_caller(node: Node) -> bool:
    """True for nodes that stop until the caller gives input: what every cycle must contain."""
    if isinstance(node, ClassifyNode):
        return node.input == "next"
    return isinstance(node, (DtmfMenuNode, CollectNode))


def json_schema() -> dict:
    """JSON Schema of the format (shape only: validate() checks the graph, templates and the
    rest), for flow editors and the control plane's OpenAPI document."""
    return msgspec.json.schema(Flow)
