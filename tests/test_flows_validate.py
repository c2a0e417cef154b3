"""Flow validation: one test per rule, each checking the node and the JSON path it names."""
import copy
import json
import pathlib

import pytest

from gateway.flows import FlowValidationError, errors_as_json, validate
from gateway.flows.model import MAX_NODES, MAX_TEXT

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples" / "flows"

BASE = {
    "name": "base", "start": "entry",
    "nodes": {
        "entry": {"type": "entry", "next": "menu"},
        "menu": {"type": "dtmf_menu", "prompt": "Press 1 or 2",
                 "options": {"1": "ask", "2": "bye"}},
        "ask": {"type": "collect", "next": "bye",
                "values": [{"name": "acct", "prompt": "Account?", "validation": "digits"}]},
        "bye": {"type": "end", "message": "Bye {{acct}}"},
    },
}


def flow(**changes) -> dict:
    """BASE with node-level changes: ``node_id={...fields}`` merges, ``node_id=None`` deletes."""
    definition = copy.deepcopy(BASE)
    for node_id, fields in changes.items():
        if fields is None:
            del definition["nodes"][node_id]
        elif node_id in definition["nodes"] and "type" not in fields:
            definition["nodes"][node_id].update(fields)
        else:
            definition["nodes"][node_id] = fields
    return definition


def errors(definition, **kwargs) -> list[dict]:
    with pytest.raises(FlowValidationError) as info:
        validate(definition, **kwargs)
    listed = errors_as_json(info.value)
    assert listed and all(set(e) == {"node", "path", "message"} for e in listed)
    return listed


def one(definition, **kwargs) -> dict:
    (error,) = errors(definition, **kwargs)
    return error


def test_base_and_examples_are_valid():
    assert set(validate(BASE).nodes) == set(BASE["nodes"])
    for path in EXAMPLES.glob("*.json"):
        for channel in ({"channel_type": "voice", "provider": "twilio"},
                        {"channel_type": "whatsapp"}, {"channel_type": "web"}, {}):
            validate(json.loads(path.read_text()), **channel)


# -- top level -----------------------------------------------------------------------------------


@pytest.mark.parametrize("definition,path", [
    ([], "$"),
    ({"name": "x", "start": "e"}, "$.nodes"),
    ({"name": "x", "start": "e", "nodes": {}}, "$.nodes"),
    ({"name": "x", "start": "e", "nodes": []}, "$.nodes"),
])
def test_not_a_flow_at_all(definition, path):
    assert any(e["path"] == path for e in errors(definition))


def test_top_level_fields():
    bad = {**BASE, "name": "", "start": 3, "timezone": "Mars/Olympus", "colour": "red",
           "variables": {"ok": "1", "9bad": "x", "caller": "me", "n": 5}}
    found = {e["path"]: e for e in errors(bad)}
    assert set(found) == {"$.name", "$.start", "$.timezone", "$.colour", "$.variables.9bad",
                          "$.variables.caller", "$.variables.n"}
    assert all(e["node"] is None for e in found.values())
    assert "Mars/Olympus" in found["$.timezone"]["message"]


@pytest.mark.parametrize("tz", ["America", "", "UTC ", "a\x00b", "../x", "/etc/passwd",
                                "x" * 5000, "Europe/London/", "zone.tab", 5, ["UTC"]])
def test_bad_time_zones_are_errors_not_crashes(tz):
    assert one({**BASE, "timezone": tz})["path"] == "$.timezone"


def test_name_is_optional_and_paths_can_be_prefixed():
    definition = {k: v for k, v in BASE.items() if k != "name"}
    assert validate(definition).name == "flow"
    with pytest.raises(FlowValidationError) as info:
        validate({**definition, "start": "nope"})
    assert errors_as_json(info.value, prefix="$.definition")[0]["path"] == "$.definition.start"


def test_unknown_top_level_field_suggests_the_right_one():
    assert "did you mean 'timezone'" in one({**BASE, "timezon": "UTC"})["message"]


@pytest.mark.parametrize("where", ["ui", "body"])
def test_deeply_nested_json_is_an_error_not_a_recursion_error(where):
    deep: list = []
    cur = deep
    for _ in range(100_000):
        cur.append([])
        cur = cur[0]
    definition = flow(ask={"next": "call"},
                      call={"type": "api_call", "method": "POST", "url": "https://a.test/",
                            "success": "bye", "error": "bye"})
    definition["nodes"]["call"][where] = deep
    error = one(definition)
    assert error["path"] == "$" and "deeper" in error["message"]


def test_too_many_nodes():
    nodes = {f"n{i}": {"type": "end"} for i in range(MAX_NODES + 1)}
    error = one({"name": "big", "start": "n0", "nodes": nodes})
    assert error["path"] == "$.nodes" and str(MAX_NODES) in error["message"]


def test_bad_node_id():
    definition = flow(**{"bad id!": {"type": "end"}})
    assert any(e["path"] == "$.nodes.bad id!" for e in errors(definition))


# -- node shape ----------------------------------------------------------------------------------


def test_node_not_an_object_unknown_type_and_missing_type():
    found = errors(flow(x="end", y={"type": "teleport"}, z={"next": "menu"}))
    by_node = {e["node"]: e for e in found if e["node"] in ("x", "y", "z")}
    assert by_node["x"]["path"] == "$.nodes.x"
    assert by_node["y"]["path"] == "$.nodes.y.type" and "teleport" in by_node["y"]["message"]
    assert by_node["z"]["path"] == "$.nodes.z.type" and "missing" in by_node["z"]["message"]


def test_missing_required_field():
    error = one(flow(ask={"type": "collect", "values": [{"name": "acct", "prompt": "A?"}]}))
    assert error == {"node": "ask", "path": "$.nodes.ask.next",
                     "message": "missing required field 'next'"}


def test_unknown_field_suggests_a_close_name():
    error = one(flow(menu={"opitons": {"1": "ask"}}))
    assert error["path"] == "$.nodes.menu.opitons"
    assert "did you mean 'options'" in error["message"]


@pytest.mark.parametrize("changes,node,path", [
    ({"menu": {"options": {"1": "ask", "2": 7}}}, "menu", "$.nodes.menu.options.2"),
    ({"menu": {"options": {"1": "ask", "12": "bye"}}}, "menu", "$.nodes.menu.options.12"),
    ({"menu": {"options": {}}}, "menu", "$.nodes.menu.options"),
    ({"menu": {"timeout_s": 0}}, "menu", "$.nodes.menu.timeout_s"),
    ({"menu": {"timeout_s": 3600}}, "menu", "$.nodes.menu.timeout_s"),
    ({"menu": {"retries": 50}}, "menu", "$.nodes.menu.retries"),
    ({"menu": {"retries": True}}, "menu", "$.nodes.menu.retries"),
    ({"menu": {"prompt": "x" * (MAX_TEXT + 1)}}, "menu", "$.nodes.menu.prompt"),
    ({"menu": {"prompt": ""}}, "menu", "$.nodes.menu.prompt"),
    ({"ask": {"values": [{"name": "acct", "prompt": "A?"}, {"name": "1x", "prompt": "B?"}]}},
     "ask", "$.nodes.ask.values.1.name"),
    ({"ask": {"values": [{"name": "acct", "prompt": "A?", "validation": "phone"}]}},
     "ask", "$.nodes.ask.values.0.validation"),
    ({"ask": {"values": []}}, "ask", "$.nodes.ask.values"),
    ({"ask": {"mode": "telepathy"}}, "ask", "$.nodes.ask.mode"),
    ({"bye": {"reason": "Not Allowed"}}, "bye", "$.nodes.bye.reason"),
])
def test_field_types_and_bounds(changes, node, path):
    found = errors(flow(**changes))
    assert (found[0]["node"], found[0]["path"]) == (node, path)
    # (an empty `values` list also leaves {{acct}} in 'bye' undefined: a second, true error)
    assert len(found) == 1 or path == "$.nodes.ask.values"


def test_every_bad_field_is_reported_at_once():
    found = errors(flow(menu={"retries": 50, "timeout_s": -1},
                        ask={"max_retries": "x", "colour": 1}))
    assert {e["path"] for e in found} == {
        "$.nodes.menu.retries", "$.nodes.menu.timeout_s", "$.nodes.ask.max_retries",
        "$.nodes.ask.colour"}


def test_messages_are_readable():
    error = one(flow(menu={"options": {"1": "ask", "2": "bye", "x": "bye"}}))
    assert "DTMF key" in error["message"] and "`" not in error["message"]


# -- graph ---------------------------------------------------------------------------------------


def test_no_entry_node():
    definition = flow(entry=None)
    found = errors(definition)
    assert any(e["path"] == "$.nodes" and "entry" in e["message"] for e in found)


def test_two_entry_nodes():
    found = errors(flow(entry2={"type": "entry", "next": "menu"}))
    assert {"node": "entry2", "path": "$.nodes.entry2.type"} in [
        {k: e[k] for k in ("node", "path")} for e in found]


def test_start_must_name_the_entry():
    error = one({**BASE, "start": "menu"})
    assert error["path"] == "$.start" and "'entry'" in error["message"]


def test_edge_to_a_missing_node_names_node_and_path():
    found = errors(flow(menu={"options": {"1": "ask", "2": "by"}}))
    # 'bye' is now unreachable too; the missing target is reported at the edge itself.
    error = next(e for e in found if e["path"] == "$.nodes.menu.options.2")
    assert error["node"] == "menu"
    assert "'by'" in error["message"] and "did you mean 'bye'" in error["message"]


def test_edge_back_to_the_entry():
    error = one(flow(menu={"options": {"1": "ask", "2": "bye", "9": "entry"}}))
    assert error["path"] == "$.nodes.menu.options.9" and "entry" in error["message"]


def test_unreachable_node():
    error = one(flow(orphan={"type": "end"}))
    assert error == {"node": "orphan", "path": "$.nodes.orphan",
                     "message": "node 'orphan' cannot be reached from the start"}


def test_cycle_without_an_input_node():
    found = errors(flow(bye={"type": "speak", "text": "Again", "next": "check"},
                        check={"type": "condition", "default": "bye",
                               "rules": [{"op": "exists", "var": "acct", "next": "bye"}]}))
    (error,) = found
    assert error["node"] == "bye" and error["path"] == "$.nodes.bye"
    assert "bye -> check -> bye" in error["message"]


def test_self_loop_without_input():
    error = one(flow(bye={"type": "condition", "default": "bye",
                          "rules": [{"op": "exists", "var": "acct", "next": "bye"}]}))
    assert error["node"] == "bye" and "cycle" in error["message"]


def test_cycles_through_an_input_node_are_fine():
    validate(flow(bye={"type": "speak", "text": "Again", "next": "menu"}))
    classify = {"type": "classify", "prompt": "Yes?", "default": "bye",
                "categories": [{"name": "y", "keywords": ["yes"], "next": "ask"}]}
    validate(flow(bye={"type": "speak", "text": "Again", "next": "cls"}, cls=classify))


def test_classify_of_the_last_input_does_not_break_a_cycle():
    classify = {"type": "classify", "input": "last", "default": "bye",
                "categories": [{"name": "y", "keywords": ["yes"], "next": "bye"}]}
    found = errors(flow(bye={"type": "speak", "text": "Again", "next": "cls"}, cls=classify))
    assert any("cycle" in e["message"] for e in found)


def test_graph_checks_still_name_missing_targets_when_another_node_is_malformed():
    found = errors(flow(menu={"retries": "x"}, ask={"next": "nowhere"}))
    assert {e["path"] for e in found} == {"$.nodes.menu.retries", "$.nodes.ask.next"}


# -- meaning -------------------------------------------------------------------------------------


@pytest.mark.parametrize("changes,path", [
    ({"ask": {"values": [{"name": "acct", "prompt": "A?", "validation": "regex",
                          "pattern": "([0-9"}]}}, "$.nodes.ask.values.0.pattern"),
    ({"ask": {"values": [{"name": "acct", "prompt": "A?", "validation": "regex"}]}},
     "$.nodes.ask.values.0.pattern"),
    ({"ask": {"values": [{"name": "acct", "prompt": "A?", "pattern": "x"}]}},
     "$.nodes.ask.values.0.pattern"),
    ({"ask": {"values": [{"name": "acct", "prompt": "A?"}, {"name": "acct", "prompt": "B?"}]}},
     "$.nodes.ask.values.1.name"),
    ({"ask": {"values": [{"name": "caller", "prompt": "A?"}], "next": "bye2"},
      "bye2": {"type": "end"}, "bye": None, "menu": {"options": {"1": "ask"}}},
     "$.nodes.ask.values.0.name"),
    ({"ask": {"values": [{"name": "acct", "prompt": "A?", "min_length": 5,
                          "max_length": 2}]}}, "$.nodes.ask.values.0.max_length"),
])
def test_collect_rules(changes, path):
    assert one(flow(**changes))["path"] == path


def rule_flow(rule: dict) -> dict:
    return flow(menu={"options": {"1": "c", "2": "bye"}},
                c={"type": "condition", "rules": [{"next": "ask", **rule}], "default": "bye"})


@pytest.mark.parametrize("rule,path", [
    ({"op": "equals", "value": "x"}, "$.nodes.c.rules.0.var"),
    ({"op": "equals", "var": "acct"}, "$.nodes.c.rules.0.value"),
    ({"op": "equals", "var": "acct", "value": ["a"]}, "$.nodes.c.rules.0.value"),
    ({"op": "in", "var": "acct", "value": "a"}, "$.nodes.c.rules.0.value"),
    ({"op": "regex", "var": "acct", "value": "(unclosed"}, "$.nodes.c.rules.0.value"),
    ({"op": "exists", "var": "acct", "value": 1}, "$.nodes.c.rules.0.value"),
    ({"op": "lt", "var": "acct", "value": "ten"}, "$.nodes.c.rules.0.value"),
    ({"op": "gt", "var": "acct", "value": True}, "$.nodes.c.rules.0.value"),
    ({"op": "time_between", "from": "09:00"}, "$.nodes.c.rules.0.to"),
    ({"op": "time_between"}, "$.nodes.c.rules.0"),
    ({"op": "time_between", "from": "25:00", "to": "10:00"}, "$.nodes.c.rules.0.from"),
    ({"op": "time_between", "days": ["monday"]}, "$.nodes.c.rules.0.days.0"),
    ({"op": "equals", "var": "acct", "value": "1", "days": ["mon"]}, "$.nodes.c.rules.0"),
    ({"op": "bigger", "var": "acct"}, "$.nodes.c.rules.0.op"),
    ({"op": "equals", "var": "acct", "value": "{{nope}}"}, "$.nodes.c.rules.0.value"),
])
def test_condition_rules(rule, path):
    error = one(rule_flow(rule))
    assert (error["node"], error["path"]) == ("c", path)


@pytest.mark.parametrize("pattern,risky", [
    ("(a+)+$", True), ("(a*)*b", True), ("(x|(ab+)+)c", True), ("((a|b)+)*", True),
    ("(?=(a+)+)", True), ("(a{1,60})+", True),
    ("a+b+", False), ("(ab)+", False), ("(a{1,3})+", False), ("(?>a+)+", False),
    ("(a++)+", False), ("[0-9]{3}-[0-9]{4}", False),
])
def test_regexes_with_nested_unbounded_repeats_are_rejected(pattern, risky):
    definition = rule_flow({"op": "regex", "var": "acct", "value": pattern})
    if risky:
        error = one(definition)
        assert error["path"] == "$.nodes.c.rules.0.value" and "exponential" in error["message"]
    else:
        validate(definition)


@pytest.mark.parametrize("rule", [
    {"op": "time_between", "days": ["sat", "sun"]},
    {"op": "time_between", "from": "22:00", "to": "06:00"},
    {"op": "lt", "var": "acct", "value": "{{acct}}"},
    {"op": "in", "var": "acct", "value": ["1", 2, 3.5]},
    {"op": "exists", "var": "acct.nested.0"},
])
def test_condition_rules_that_are_fine(rule):
    validate(rule_flow(rule))


def api(**fields) -> dict:
    node = {"type": "api_call", "url": "https://api.test/x?n={{acct}}", "success": "bye",
            "error": "bye", **fields}
    return flow(ask={"next": "call"}, call=node)


@pytest.mark.parametrize("fields,path", [
    ({"url": "ftp://api.test/x"}, "$.nodes.call.url"),
    ({"url": "https://{{acct}}.test/x"}, "$.nodes.call.url"),
    ({"url": "{{acct}}"}, "$.nodes.call.url"),
    ({"body": {"a": 1}}, "$.nodes.call.body"),                         # GET with a body
    ({"method": "POST", "body": "x" * 20000}, "$.nodes.call.body"),
    ({"extract": {"v": "a.b"}}, "$.nodes.call.extract.v"),
    ({"extract": {"v": "$..b"}}, "$.nodes.call.extract.v"),
    ({"extract": {"v": "$.a[?(@.x)]"}}, "$.nodes.call.extract.v"),
    ({"extract": {"caller": "$.a"}}, "$.nodes.call.extract.caller"),
    ({"headers": {"Bad Header": "x"}}, "$.nodes.call.headers.Bad Header"),
    ({"headers": {"X-Key": "{{secret}}"}}, "$.nodes.call.headers.X-Key"),
    ({"method": "TRACE"}, "$.nodes.call.method"),
    ({"timeout_s": 31}, "$.nodes.call.timeout_s"),
    ({"method": "POST", "body": {"deep": ["{{nope}}"]}}, "$.nodes.call.body.deep.0"),
])
def test_api_call_rules(fields, path):
    error = one(api(**fields))
    assert (error["node"], error["path"]) == ("call", path)


def test_api_call_extracted_variables_are_known_to_templates():
    definition = api(extract={"tier": "$.customer['tier level'][0]"})
    definition["nodes"]["bye"]["message"] = "Tier {{tier}} {{acct}} {{api_status}}"
    validate(definition)


def classify(**fields) -> dict:
    node = {"type": "classify", "default": "bye", "prompt": "What?",
            "categories": [{"name": "a", "keywords": ["x"], "next": "bye"}], **fields}
    return flow(ask={"next": "cls"}, cls=node)


@pytest.mark.parametrize("fields,path", [
    ({"categories": [{"name": "a", "next": "bye"}]}, "$.nodes.cls.categories.0"),
    ({"categories": [{"name": "a", "keywords": ["x"], "next": "bye"},
                     {"name": "a", "keywords": ["y"], "next": "bye"}]},
     "$.nodes.cls.categories.1.name"),
    ({"categories": [{"name": "a", "regex": "[", "next": "bye"}]},
     "$.nodes.cls.categories.0.regex"),
    ({"input": "last"}, "$.nodes.cls.prompt"),
    ({"url": "http://{{x}}"}, "$.nodes.cls.url"),
    ({"categories": []}, "$.nodes.cls.categories"),
])
def test_classify_rules(fields, path):
    assert one(classify(**fields))["path"] == path


def test_classify_with_a_url_needs_no_keywords():
    validate(classify(url="https://nlu.test/c", categories=[{"name": "a", "next": "bye"}]))


@pytest.mark.parametrize("number,ok", [
    ("+14155550100", True), ("sip:desk@pbx.example.com", True), ("{{acct}}", True),
    ("+1 415 555 0100", True), ("call me", False), ("+0123", False),
])
def test_transfer_number(number, ok):
    definition = flow(bye={"type": "transfer", "number": number})
    if ok:
        validate(definition)
    else:
        assert one(definition)["path"] == "$.nodes.bye.number"


# -- templates -----------------------------------------------------------------------------------


def test_unknown_variable_in_a_template_with_a_suggestion():
    error = one(flow(bye={"message": "Bye {{acc}}"}))
    assert (error["node"], error["path"]) == ("bye", "$.nodes.bye.message")
    assert "'acc'" in error["message"] and "did you mean 'acct'" in error["message"]


def test_malformed_template():
    error = one(flow(bye={"message": "Bye {{ acct + 1 }}"}))
    assert error["path"] == "$.nodes.bye.message" and "malformed" in error["message"]


def test_known_variables_declared_collected_builtin_nested():
    definition = flow(bye={"message": "{{ acct }} {{caller}} {{now_hour}} {{plan.name}} "
                                      "{{last_input}} {{category}}"})
    definition["variables"] = {"plan": ""}
    validate(definition)


def test_agent_variables_must_be_known():
    error = one(flow(bye={"type": "agent", "agent_id": "a", "variables": ["acct", "ghost"]}))
    assert error["path"] == "$.nodes.bye.variables.1"


# -- where the flow runs ---------------------------------------------------------------------


def transfer_flow() -> dict:
    return flow(bye={"type": "transfer", "number": "+14155550100", "message": "Connecting"})


def test_transfer_rejected_where_the_provider_cannot():
    error = one(transfer_flow(), channel_type="voice", provider="exotel")
    assert error["node"] == "bye" and "exotel" in error["message"]
    for ok in ({"channel_type": "voice", "provider": "twilio"},
               {"channel_type": "voice", "provider": "plivo"},
               {"channel_type": "whatsapp", "provider": "meta"}, {}):
        validate(transfer_flow(), **ok)


def test_voice_flow_that_speaks_needs_tts():
    found = errors(transfer_flow(), channel_type="voice", tts_available=False)
    assert {e["node"] for e in found} == {"menu", "ask", "bye"}
    validate(transfer_flow(), channel_type="whatsapp", tts_available=False)
    silent = {"name": "s", "start": "e", "nodes": {"e": {"type": "entry", "next": "a"},
                                                   "a": {"type": "agent", "agent_id": "x"}}}
    validate(silent, channel_type="voice", tts_available=False)


def test_email_on_a_keypad_without_speech_input():
    definition = flow(ask={"values": [{"name": "acct", "prompt": "Email?",
                                       "validation": "email"}]})
    error = one(definition, channel_type="voice", speech_input=False)
    assert error["path"] == "$.nodes.ask.values.0.validation"
    validate(definition, channel_type="voice", speech_input=True)
    validate(definition, channel_type="sms", speech_input=False)


def test_email_by_dtmf_mode_on_voice():
    definition = flow(ask={"mode": "dtmf", "values": [{"name": "acct", "prompt": "Email?",
                                                       "validation": "email"}]})
    error = one(definition, channel_type="voice", speech_input=True)
    assert "mode is dtmf" in error["message"]


@pytest.mark.parametrize("to,ok", [("{{caller}}", True), ("+14155550100", True),
                                   ("447700900123", True), ("someone", False)])
def test_sms_recipient(to, ok):
    definition = flow(bye={"type": "sms", "channel_id": "s", "text": "hi", "to": to,
                           "next": "end"}, end={"type": "end"})
    if ok:
        validate(definition)
    else:
        assert one(definition)["path"] == "$.nodes.bye.to"


def test_json_schema_describes_every_node_type():
    from gateway.flows import NODE_TYPES, json_schema
    schema = json_schema()
    assert {cls.__name__ for cls in NODE_TYPES.values()} <= set(schema["$defs"])
    json.dumps(schema)


def test_known_agents_and_sms_channels():
    definition = flow(bye={"type": "sms", "channel_id": "sms-9", "text": "hi", "next": "ag"},
                      ag={"type": "agent", "agent_id": "ghost"})
    found = errors(definition, agent_ids=["real"], sms_channel_ids={"sms-1"})
    assert {e["path"] for e in found} == {"$.nodes.ag.agent_id", "$.nodes.bye.channel_id"}
    validate(definition, agent_ids=["ghost"], sms_channel_ids=["sms-9"])


def test_unknown_channel_type():
    assert one(BASE, channel_type="carrier-pigeon")["path"] == "$"


def test_exception_message_summarises():
    with pytest.raises(FlowValidationError, match=r"\$\.nodes\.orphan: .* \(and 1 more\)"):
        validate(flow(orphan={"type": "end"}, orphan2={"type": "end"}))
