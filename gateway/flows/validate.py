"""Validation of a flow definition: every problem found, each with its node, JSON path and reason.

``validate(definition) -> Flow`` raises :class:`FlowValidationError` listing *all* errors it finds
(the control API answers 422 with ``errors_as_json(exc)``). Three passes:

1. shape: the top level and each node against the Structs in :mod:`.model` (types, required and
   unknown fields, bounds), one error per bad field, paths like ``$.nodes.menu.options.3``;
2. meaning: regexes compile (without nested unbounded repeats), JSON paths parse, rule fields fit
   their operator, URLs are literal http(s) with a literal host, templates are well formed and
   name *known* variables;
3. graph: exactly one ``entry`` node and ``start`` names it, every edge target exists (and is not
   the entry), every node is reachable from the entry, every cycle contains a node that waits for
   the caller (``dtmf_menu``, ``collect``, ``classify`` with ``input: "next"``).

Known variables: the builtins (:data:`BUILTIN_VARIABLES`), names declared in the flow's
``variables`` (defaults, overridable by the host's initial variables), ``collect`` value names and
``api_call`` ``extract`` names. A template naming anything else is an error, so a typo is caught at
save time instead of rendering as an empty string mid-call. (The check is by name, not by path: a
variable collected on another branch is "known" and renders empty where it was never set.)

Channel-aware checks run when the caller says where the flow will run: ``provider`` that cannot
transfer a live call (see :data:`TRANSFER_PROVIDERS`) rejects ``transfer`` nodes on voice;
``tts_available=False`` rejects voice flows that speak; ``speech_input=False`` rejects collecting an
email address on voice (a keypad cannot type one); ``agent_ids``/``sms_channel_ids`` (when given)
must contain every referenced agent / SMS channel.
"""
from __future__ import annotations

import difflib
import functools
import re
import typing
import zoneinfo
from typing import Any, Iterable, Iterator

import msgspec

from . import jsonpath, template
from .model import (MAX_BODY_BYTES, MAX_NODES, MAX_TEXT, AgentNode, ApiCallNode, ClassifyNode,
                    CollectNode, ConditionNode, DtmfMenuNode, EndNode, Flow, Node,
                    NODE_TYPES, SmsNode, SpeakNode, TransferNode, edges, waits_for_caller)

# Set by the engine (or the host) for every conversation; `now*` are computed from the event time.
BUILTIN_VARIABLES = frozenset({
    "caller", "channel", "channel_type", "flow", "last_input", "category", "api_status",
    "api_error", "now", "now_date", "now_time", "now_hour", "now_minute", "now_weekday",
})
CHANNEL_TYPES = ("voice", "web", "whatsapp", "sms")
# Voice providers whose API can move a live call to another number (Twilio: <Dial> TwiML through
# the REST API; Plivo: the transfer API). Exotel's Voicebot applet cannot: the call only goes on to
# the next applet of the dashboard flow when the stream closes.
TRANSFER_PROVIDERS = frozenset({"twilio", "plivo"})

MAX_DEPTH = 32                 # JSON nesting (a flow needs about 6)
_TZ_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_+-]{0,30}(/[A-Za-z0-9_+-]{1,30}){0,2}$")
_NODE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_URL_RE = re.compile(r"^https?://[^/?#{}\s]+(?:[/?#]|$)", re.IGNORECASE)
_PHONE_RE = re.compile(r"^\+?[1-9][0-9]{5,14}$")
_NUMBER_RE = re.compile(r"^(\+?[1-9][0-9]{5,14}|sips?:[^\s]{3,200})$")
_TOP_FIELDS = {"name", "start", "nodes", "timezone", "variables", "description", "version"}
# msgspec's messages quote the regex; these say what the regex means.
_FRIENDLY = {
    "^[A-Za-z0-9_-]{1,64}$": "1-64 letters, digits, '_' or '-'",
    "^[A-Za-z_][A-Za-z0-9_]{0,63}$": "a variable name (a letter or '_', then letters, digits, '_')",
    "^[0-9*#]$": "one DTMF key: 0-9, * or #",
    "^([01][0-9]|2[0-3]):[0-5][0-9]$": "a time HH:MM (24h)",
}


class FlowError(msgspec.Struct, frozen=True):
    node: str | None       # the node id the error is about, None for flow-level errors
    path: str              # JSON path into the definition, e.g. "$.nodes.menu.options.3"
    message: str


class FlowValidationError(ValueError):
    def __init__(self, errors: list[FlowError]):
        self.errors = list(errors)
        first = self.errors[0] if self.errors else FlowError(None, "$", "invalid flow")
        more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        super().__init__(f"{first.path}: {first.message}{more}")


def errors_as_json(exc: FlowValidationError, prefix: str = "$") -> list[dict]:
    """The errors as ``[{"node", "path", "message"}]`` for an HTTP 422 body; ``prefix`` replaces
    the leading ``$`` when the definition sits inside a bigger body (``"$.definition"``)."""
    return [{"node": e.node, "path": prefix + e.path[1:], "message": e.message}
            for e in exc.errors]


class _Errors(list):
    def add(self, node: str | None, path: str, message: str) -> None:
        self.append(FlowError(node, path, message))


# ---------------------------------------------------------------------------------------------
# Pass 1: shape


def _friendly(message: str) -> str:
    for pattern, meaning in _FRIENDLY.items():
        message = message.replace(f"matching regex '{pattern}'", f"({meaning})")
    for name, plain in (("`str`", "a string"), ("`int`", "an integer"), ("`float`", "a number"),
                        ("`bool`", "true/false"), ("`array`", "a list"), ("`object`", "an object"),
                        ("`null`", "null")):
        message = message.replace(name, plain)
    return message.replace("`", "")


def _msgspec_error(exc: msgspec.ValidationError, path: str) -> tuple[str, str]:
    """(path, message) from a msgspec error raised while converting the value at ``path``."""
    text = str(exc)
    message, _, where = text.partition(" - at `")
    where = where.rstrip("`")
    if where.startswith("$"):
        suffix = re.sub(r"\[\.\.\.\]", "", where[1:])
        path += re.sub(r"\[(\d+)\]", r".\1", suffix)
    elif where.startswith("key` in `$"):
        path += re.sub(r"\[(\d+)\]", r".\1", where[len("key` in `$"):])
        message = "invalid key: " + message
    return path, _friendly(message)


def _unwrap(tp: Any) -> Any:
    """Strip Optional[...] and Annotated[...] to the type a value is checked against."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin is typing.Union:
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _check_value(value: Any, tp: Any, path: str, node: str | None, errs: _Errors) -> bool:
    """Check ``value`` against type ``tp``; on failure, dig into containers for precise paths."""
    try:
        msgspec.convert(value, tp)
        return True
    except msgspec.ValidationError as exc:
        top = exc
    before = len(errs)
    inner = _unwrap(tp)
    origin = typing.get_origin(inner)
    if isinstance(inner, type) and issubclass(inner, msgspec.Struct) and isinstance(value, dict):
        _check_fields(value, inner, path, node, errs)
    elif origin is dict and isinstance(value, dict):
        key_tp, value_tp = typing.get_args(inner)
        for key, item in value.items():
            try:
                msgspec.convert(key, key_tp)
            except msgspec.ValidationError as exc:
                errs.add(node, f"{path}.{_short(key)}",
                         "invalid key: " + _msgspec_error(exc, "")[1])
                continue
            _check_value(item, value_tp, f"{path}.{_short(key)}", node, errs)
    elif origin is list and isinstance(value, list):
        (item_tp,) = typing.get_args(inner)
        for i, item in enumerate(value):
            _check_value(item, item_tp, f"{path}.{i}", node, errs)
    if len(errs) == before:             # nothing more precise found: report msgspec's own words
        errs.add(node, *_msgspec_error(top, path))
    return False


def _short(value: Any, limit: int = 64) -> str:
    """User-supplied text quoted in an error or a path, cut so errors stay small."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _unknown_field(key: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1) if len(key) <= 64 else []
    return f"unknown field {_short(key)!r}" + (f" (did you mean {close[0]!r}?)" if close else "")


@functools.lru_cache(maxsize=None)
def _fields(cls: type) -> dict[str, msgspec.structs.FieldInfo]:
    # msgspec evaluates the (string) annotations on every call: do it once per class.
    return {f.encode_name: f for f in msgspec.structs.fields(cls)}


def _check_fields(raw: dict, cls: type, path: str, node: str | None, errs: _Errors) -> None:
    fields = _fields(cls)
    tag_field = cls.__struct_config__.tag_field
    for key in raw:
        if key != tag_field and key not in fields:
            errs.add(node, f"{path}.{_short(key)}", _unknown_field(str(key), fields))
    for name, f in fields.items():
        if name in raw:
            _check_value(raw[name], f.type, f"{path}.{name}", node, errs)
        elif f.required:
            errs.add(node, f"{path}.{name}", f"missing required field {name!r}")


def _parse_node(node_id: str, raw: Any, errs: _Errors) -> Node | None:
    path = f"$.nodes.{node_id}"
    if not isinstance(raw, dict):
        errs.add(node_id, path, "a node is an object with a 'type'")
        return None
    kind = raw.get("type")
    cls = NODE_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        errs.add(node_id, f"{path}.type",
                 f"unknown node type {_short(kind)!r} (one of: {', '.join(NODE_TYPES)})"
                 if "type" in raw else "missing required field 'type'")
        return None
    before = len(errs)
    _check_fields(raw, cls, path, node_id, errs)
    if len(errs) > before:
        return None
    try:
        return msgspec.convert(raw, cls)
    except msgspec.ValidationError as exc:            # defensive: pass 1 should have said why
        errs.add(node_id, *_msgspec_error(exc, path))
        return None


def _too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether JSON ``value`` nests deeper than ``limit`` (walked without recursion, so a hostile
    document cannot exhaust the stack here or later in recursive helpers)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _parse_top(definition: Any, errs: _Errors) -> dict | None:
    if not isinstance(definition, dict):
        errs.add(None, "$", "a flow definition is a JSON object")
        return None
    if _too_deep(definition):
        errs.add(None, "$", f"the definition nests deeper than {MAX_DEPTH} levels")
        return None
    for key in definition:
        if key not in _TOP_FIELDS:
            errs.add(None, f"$.{_short(key)}", _unknown_field(str(key), _TOP_FIELDS))
    name = definition.get("name", "flow")       # optional: the control plane stores it apart
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        errs.add(None, "$.name", "name is a non-empty string of at most 200 characters")
    if not isinstance(definition.get("start"), str):
        errs.add(None, "$.start", "start is the id of the entry node")
    if not isinstance(definition.get("description", ""), str):
        errs.add(None, "$.description", "description is a string")
    nodes = definition.get("nodes")
    if not isinstance(nodes, dict) or not nodes:
        errs.add(None, "$.nodes", "nodes is a non-empty object of node id -> node")
        return None
    if len(nodes) > MAX_NODES:
        errs.add(None, "$.nodes", f"too many nodes: {len(nodes)} (at most {MAX_NODES})")
        return None
    for node_id in nodes:
        if not isinstance(node_id, str) or not _NODE_ID_RE.match(node_id):
            errs.add(None, f"$.nodes.{_short(node_id)}",
                     "node ids are 1-64 letters, digits, '_' or '-'")
    tz = definition.get("timezone")
    if tz is not None:
        try:
            if not isinstance(tz, str) or not _TZ_RE.match(tz):
                raise ValueError
            zoneinfo.ZoneInfo(tz)
        except (ValueError, KeyError, OSError):     # not found, a directory, unreadable, ...
            errs.add(None, "$.timezone", f"unknown time zone {_short(tz)!r} (an IANA name, e.g. "
                     "'Europe/London')")
    variables = definition.get("variables", {})
    if not isinstance(variables, dict):
        errs.add(None, "$.variables", "variables is an object of name -> default text")
    else:
        for name, default in variables.items():
            vpath = f"$.variables.{name}"
            if not isinstance(name, str) or not _NAME_RE.match(name):
                errs.add(None, vpath, "invalid variable name")
            elif name in BUILTIN_VARIABLES:
                errs.add(None, vpath, f"{name!r} is a builtin variable and cannot be declared")
            elif not isinstance(default, str) or len(default) > MAX_TEXT:
                errs.add(None, vpath, f"a default is a string of at most {MAX_TEXT} characters")
    return nodes


# ---------------------------------------------------------------------------------------------
# Pass 2: meaning


def _templates(node: Node) -> Iterator[tuple[str, str]]:
    """(path below the node, template) for every templated string of ``node``."""
    if isinstance(node, SpeakNode):
        yield "text", node.text
    elif isinstance(node, DtmfMenuNode):
        yield from (("prompt", node.prompt), ("invalid_prompt", node.invalid_prompt),
                    ("timeout_prompt", node.timeout_prompt))
    elif isinstance(node, CollectNode):
        for i, v in enumerate(node.values):
            yield f"values.{i}.prompt", v.prompt
            if v.retry_prompt:
                yield f"values.{i}.retry_prompt", v.retry_prompt
        if node.retry_prompt:
            yield "retry_prompt", node.retry_prompt
    elif isinstance(node, ConditionNode):
        for i, rule in enumerate(node.rules):
            if rule.op == "regex":
                continue
            if isinstance(rule.value, str):
                yield f"rules.{i}.value", rule.value
            elif isinstance(rule.value, list):
                yield from ((f"rules.{i}.value.{j}", v) for j, v in enumerate(rule.value)
                            if isinstance(v, str))
    elif isinstance(node, ApiCallNode):
        yield "url", node.url
        yield from ((f"headers.{k}", v) for k, v in node.headers.items())
        yield from template.json_strings(node.body, "body")
    elif isinstance(node, ClassifyNode):
        yield "prompt", node.prompt
    elif isinstance(node, TransferNode):
        yield from (("number", node.number), ("message", node.message))
    elif isinstance(node, SmsNode):
        yield from (("to", node.to), ("text", node.text))
    elif isinstance(node, EndNode):
        yield "message", node.message


def _defined_variables(raw_nodes: dict) -> set[str]:
    """Builtins plus every name a collect or api_call can set (read leniently from the raw nodes,
    so one malformed node does not turn every use of its variables into a second error)."""
    names = set(BUILTIN_VARIABLES)
    for raw in raw_nodes.values():
        if not isinstance(raw, dict):
            continue
        if raw.get("type") == "collect" and isinstance(raw.get("values"), list):
            names.update(v["name"] for v in raw["values"]
                         if isinstance(v, dict) and isinstance(v.get("name"), str))
        elif raw.get("type") == "api_call" and isinstance(raw.get("extract"), dict):
            names.update(k for k in raw["extract"] if isinstance(k, str))
    return names


def _nested_repeat(pattern: str) -> bool:
    """True when an unbounded repeat sits inside another (``(a+)+``): Python's backtracking
    engine can take exponential time on such a pattern, and it runs inside a live call."""
    try:
        from re import _constants as sre, _parser as parser     # CPython's own regex parser
    except ImportError:                                          # pragma: no cover
        return False
    repeats = {sre.MAX_REPEAT, sre.MIN_REPEAT}

    def walk(items, inside: bool) -> bool:
        for op, av in items:
            if op in repeats:
                unbounded = av[1] == sre.MAXREPEAT or av[1] > 50
                if (inside and unbounded) or walk(av[2], inside or unbounded):
                    return True
            elif op == sre.SUBPATTERN and walk(av[-1], inside):
                return True
            elif op == sre.BRANCH and any(walk(b, inside) for b in av[1]):
                return True
            elif op in (sre.ASSERT, sre.ASSERT_NOT) and walk(av[1], inside):
                return True
        return False                                 # atomic groups/possessive: no backtracking

    try:
        return walk(parser.parse(pattern).data, False)
    except Exception:                                # compile() already reported real errors
        return False


def _check_regex(pattern: str | None, node_id: str, path: str, errs: _Errors) -> None:
    if pattern is None:
        return
    try:
        re.compile(pattern)
    except re.error as exc:
        errs.add(node_id, path, f"invalid regular expression: {exc}")
        return
    if _nested_repeat(pattern):
        errs.add(node_id, path, "nested unbounded repetition like (a+)+ can take exponential "
                 "time; rewrite it (e.g. a+) or use an atomic group (?>...)")


def _check_url(url: str, node_id: str, path: str, errs: _Errors) -> None:
    # The scheme and host are literal so no caller input can redirect a request elsewhere.
    if not _URL_RE.match(url):
        errs.add(node_id, path, "URL must start with http:// or https:// and a literal host "
                 "(templates only after the host)")


def _check_rule(node_id: str, i: int, rule, errs: _Errors) -> None:
    path = f"$.nodes.{node_id}.rules.{i}"
    op, value = rule.op, rule.value
    if op == "time_between":
        if (rule.from_ is None) != (rule.to is None):
            errs.add(node_id, f"{path}.{'to' if rule.to is None else 'from'}",
                     "time_between needs both 'from' and 'to' (or neither, with 'days')")
        elif rule.from_ is None and rule.days is None:
            errs.add(node_id, path, "time_between needs 'from'/'to', 'days' or both")
        return
    if rule.from_ is not None or rule.to is not None or rule.days is not None:
        errs.add(node_id, path, f"'from', 'to' and 'days' only apply to time_between, not {op}")
    if rule.var is None:
        errs.add(node_id, f"{path}.var", f"{op} needs 'var', the variable to test")
    if op == "exists":
        if value is not None:
            errs.add(node_id, f"{path}.value", "exists takes no 'value'")
    elif op == "in":
        if not isinstance(value, list) or not value:
            errs.add(node_id, f"{path}.value", "in needs 'value': a non-empty list")
    elif value is None or isinstance(value, list):
        errs.add(node_id, f"{path}.value", f"{op} needs 'value': a single string or number")
    elif op == "regex":
        if not isinstance(value, str):
            errs.add(node_id, f"{path}.value", "regex needs 'value': a regular expression")
        else:
            _check_regex(value, node_id, f"{path}.value", errs)
    elif op in ("lt", "le", "gt", "ge") and isinstance(value, bool):
        errs.add(node_id, f"{path}.value", f"{op} compares numbers, not true/false")
    elif op in ("lt", "le", "gt", "ge") and isinstance(value, str) and "{{" not in value:
        try:
            float(value)
        except ValueError:
            errs.add(node_id, f"{path}.value", f"{op} compares numbers: {value!r} is not one")


def _check_node(node_id: str, node: Node, errs: _Errors) -> None:
    path = f"$.nodes.{node_id}"
    if isinstance(node, CollectNode):
        seen: set[str] = set()
        for i, v in enumerate(node.values):
            vpath = f"{path}.values.{i}"
            if v.name in BUILTIN_VARIABLES:
                errs.add(node_id, f"{vpath}.name", f"{v.name!r} is a builtin variable")
            if v.name in seen:
                errs.add(node_id, f"{vpath}.name", f"{v.name!r} is collected twice in this node")
            seen.add(v.name)
            if (v.validation == "regex") != (v.pattern is not None):
                errs.add(node_id, f"{vpath}.pattern",
                         "'pattern' is required with validation 'regex' and only allowed with it")
            _check_regex(v.pattern, node_id, f"{vpath}.pattern", errs)
            if v.max_length is not None and v.max_length < v.min_length:
                errs.add(node_id, f"{vpath}.max_length", "max_length is below min_length")
    elif isinstance(node, ConditionNode):
        for i, rule in enumerate(node.rules):
            _check_rule(node_id, i, rule, errs)
    elif isinstance(node, ApiCallNode):
        _check_url(node.url, node_id, f"{path}.url", errs)
        for name, expr in node.extract.items():
            if name in BUILTIN_VARIABLES:
                errs.add(node_id, f"{path}.extract.{name}", f"{name!r} is a builtin variable")
            try:
                jsonpath.parse(expr)
            except jsonpath.JsonPathError as exc:
                errs.add(node_id, f"{path}.extract.{name}", f"invalid JSON path: {exc}")
        if node.body is not None:
            if node.method == "GET":
                errs.add(node_id, f"{path}.body", "a GET request has no body")
            try:
                size = len(msgspec.json.encode(node.body))
            except (TypeError, ValueError, OverflowError):
                size = -1
            if size < 0 or size > MAX_BODY_BYTES:
                errs.add(node_id, f"{path}.body",
                         f"body must be JSON of at most {MAX_BODY_BYTES} bytes")
    elif isinstance(node, ClassifyNode):
        names: set[str] = set()
        for i, cat in enumerate(node.categories):
            cpath = f"{path}.categories.{i}"
            if cat.name in names:
                errs.add(node_id, f"{cpath}.name", f"category {cat.name!r} appears twice")
            names.add(cat.name)
            _check_regex(cat.regex, node_id, f"{cpath}.regex", errs)
            if not cat.keywords and cat.regex is None and node.url is None:
                errs.add(node_id, cpath, "a category needs keywords or a regex (or the node a "
                         "classifier url)")
        if node.url is not None:
            _check_url(node.url, node_id, f"{path}.url", errs)
        if node.input == "last" and node.prompt:
            errs.add(node_id, f"{path}.prompt", "a prompt is only said with input 'next'")
    elif isinstance(node, TransferNode):
        if "{{" not in node.number and not _NUMBER_RE.match(node.number.replace(" ", "")):
            errs.add(node_id, f"{path}.number",
                     "number is an E.164 phone number (+14155550100) or a sip: URI")
    elif isinstance(node, SmsNode):
        if "{{" not in node.to and not _PHONE_RE.match(node.to.replace(" ", "")):
            errs.add(node_id, f"{path}.to", "to is an E.164 phone number or a template such as "
                     "{{caller}}")


def _check_templates(node_id: str, node: Node, known: set[str], errs: _Errors) -> None:
    for sub, text in _templates(node):
        path = f"$.nodes.{node_id}.{sub}"
        for bad in template.malformed(text):
            errs.add(node_id, path, f"malformed template {bad!r}: use {{{{name}}}} or "
                     "{{name.key}}")
        for ref in template.references(text):
            root = ref.split(".", 1)[0]
            if root not in known:
                close = difflib.get_close_matches(root, sorted(known), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                errs.add(node_id, path, f"unknown variable {root!r}{hint}: set it with collect "
                         "or api_call extract, or declare it in the flow's 'variables'")
    if isinstance(node, AgentNode) and node.variables:
        for i, name in enumerate(node.variables):
            if name not in known:
                errs.add(node_id, f"$.nodes.{node_id}.variables.{i}",
                         f"unknown variable {name!r}")


# ---------------------------------------------------------------------------------------------
# Pass 3: the graph


def _check_graph(start: Any, raw_nodes: dict, nodes: dict[str, Node], errs: _Errors) -> None:
    """Graph rules; reachability and cycles only once every node parsed (else they would guess)."""
    entries = [nid for nid, raw in raw_nodes.items()
               if isinstance(raw, dict) and raw.get("type") == "entry"]
    if not entries:
        errs.add(None, "$.nodes", "a flow needs exactly one 'entry' node; there is none")
    for extra in entries[1:]:
        errs.add(extra, f"$.nodes.{extra}.type",
                 f"a flow has exactly one 'entry' node; {entries[0]!r} is already one")
    if isinstance(start, str) and entries and start not in entries:
        errs.add(None, "$.start", f"start must name the entry node ({entries[0]!r}), "
                 f"not {start!r}")
    for nid, node in nodes.items():
        for sub, target in edges(node):
            if target not in raw_nodes:
                close = difflib.get_close_matches(target, list(raw_nodes), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                errs.add(nid, f"$.nodes.{nid}.{sub}", f"no node {target!r}{hint}")
            elif target in entries:
                errs.add(nid, f"$.nodes.{nid}.{sub}",
                         "edges cannot lead back to the entry node; point at the node after it")
    if len(nodes) != len(raw_nodes) or not entries:
        return
    # Reachability from the (first) entry: a wrong `start` is one error above, not one per node.
    seen = set(entries)
    todo = [entries[0]]
    while todo:
        for _, target in edges(nodes[todo.pop()]):
            if target in nodes and target not in seen:
                seen.add(target)
                todo.append(target)
    for nid in nodes:
        if nid not in seen:
            errs.add(nid, f"$.nodes.{nid}", f"node {nid!r} cannot be reached from the start")
    for cycle in _cycles_without_input(nodes):
        shown = " -> ".join(cycle + [cycle[0]])
        errs.add(cycle[0], f"$.nodes.{cycle[0]}",
                 f"cycle without a node that waits for the caller: {shown} (add a dtmf_menu, "
                 "collect or classify on it)")


def _cycles_without_input(nodes: dict[str, Node]) -> list[list[str]]:
    """Strongly connected components with a cycle among the nodes that do not wait (Tarjan)."""
    graph = {nid: [t for _, t in edges(n) if t in nodes and not waits_for_caller(nodes[t])]
             for nid, n in nodes.items() if not waits_for_caller(n)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on_stack.add(v)
            if i < len(graph[v]):
                work.append((v, i + 1))
                w = graph[v][i]
                if w not in index:
                    work.append((w, 0))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            if work:                                   # v is done: propagate to its parent
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                if len(component) > 1 or v in graph[v]:
                    order = {nid: k for k, nid in enumerate(nodes)}
                    found.append(sorted(component, key=order.__getitem__))
    return found


# ---------------------------------------------------------------------------------------------
# Channel-aware checks


def _speaks(node: Node) -> bool:
    if isinstance(node, (SpeakNode, DtmfMenuNode, CollectNode)):
        return True
    if isinstance(node, ClassifyNode):
        return bool(node.prompt)
    if isinstance(node, (EndNode, TransferNode)):
        return bool(node.message)
    return False


def _check_channel(nodes: dict[str, Node], channel_type, provider, tts_available, speech_input,
                   agent_ids, sms_channel_ids, errs: _Errors) -> None:
    if channel_type is not None and channel_type not in CHANNEL_TYPES:
        errs.add(None, "$", f"unknown channel type {channel_type!r}")
    voice = channel_type == "voice"
    for nid, node in nodes.items():
        path = f"$.nodes.{nid}"
        if (voice and isinstance(node, TransferNode) and provider is not None
                and provider not in TRANSFER_PROVIDERS):
            errs.add(nid, path, f"provider {provider!r} cannot transfer a live call; use an "
                     "agent or end node (transfer works on: "
                     f"{', '.join(sorted(TRANSFER_PROVIDERS))})")
        if voice and not tts_available and _speaks(node):
            errs.add(nid, path, "this voice flow speaks here but no text-to-speech backend is "
                     "available (install espeak-ng or configure an HTTP TTS backend)")
        keypad_only = not speech_input or getattr(node, "mode", None) == "dtmf"
        if voice and keypad_only and isinstance(node, CollectNode):
            for i, v in enumerate(node.values):
                if v.validation == "email":
                    why = "mode is dtmf" if node.mode == "dtmf" else \
                        "no speech recogniser is configured"
                    errs.add(nid, f"{path}.values.{i}.validation",
                             f"an email address cannot be entered on a keypad ({why})")
        if agent_ids is not None and isinstance(node, AgentNode) \
                and node.agent_id not in agent_ids:
            errs.add(nid, f"{path}.agent_id", f"no agent {node.agent_id!r}")
        if sms_channel_ids is not None and isinstance(node, SmsNode) \
                and node.channel_id not in sms_channel_ids:
            errs.add(nid, f"{path}.channel_id", f"no SMS channel {node.channel_id!r}")


# ---------------------------------------------------------------------------------------------


def validate(definition: Any, *, channel_type: str | None = None, provider: str | None = None,
             tts_available: bool = True, speech_input: bool = True,
             agent_ids: Iterable[str] | None = None,
             sms_channel_ids: Iterable[str] | None = None) -> Flow:
    """Check ``definition`` and return the parsed :class:`Flow`; raise :class:`FlowValidationError`
    listing every problem. ``channel_type``/``provider`` and the other keywords add the checks
    that depend on where the flow runs (see the module docstring)."""
    errs = _Errors()
    raw_nodes = _parse_top(definition, errs)
    if raw_nodes is None:
        raise FlowValidationError(errs)
    nodes: dict[str, Node] = {}
    for node_id, raw in raw_nodes.items():
        if not isinstance(node_id, str) or not _NODE_ID_RE.match(node_id):
            continue                            # reported by _parse_top
        node = _parse_node(node_id, raw, errs)
        if node is not None:
            nodes[node_id] = node
    declared = definition.get("variables")
    known = _defined_variables(raw_nodes) | set(declared if isinstance(declared, dict) else ())
    for node_id, node in nodes.items():
        _check_node(node_id, node, errs)
        _check_templates(node_id, node, known, errs)
    _check_graph(definition.get("start"), raw_nodes, nodes, errs)
    _check_channel(nodes, channel_type, provider, tts_available, speech_input,
                   set(agent_ids) if agent_ids is not None else None,
                   set(sms_channel_ids) if sms_channel_ids is not None else None, errs)
    if errs:
        raise FlowValidationError(errs)
    return Flow(name=definition.get("name", "flow"), start=definition["start"], nodes=nodes,
                timezone=definition.get("timezone"), variables=dict(definition.get("variables")
                                                                    or {}),
                description=definition.get("description", ""))
