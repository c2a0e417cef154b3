"""The flow engine, node by node and branch by branch. No clock anywhere: timeouts are TimerFired
events the test feeds, so every scenario is deterministic."""
import datetime as dt
import json
import pathlib

import msgspec
import pytest

from gateway.flows import (ApiResult, CallApi, CancelTimer, Classify, ClassifierResult,
                           DigitReceived, End, FlowContext, FlowEngine, FlowSnapshotError,
                           HandOff, SendSms, SendText, Speak, SpeechFinished, StartTimer,
                           TextReceived, TimerFired, Transfer, UtteranceReceived, validate)
from gateway.flows import engine as engine_module
from gateway.flows.model import Flow

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples" / "flows"
NOW = dt.datetime(2026, 11, 30, 10, 0, tzinfo=dt.timezone.utc)      # a Monday
VOICE = FlowContext(channel_id="ch-voice", channel_type="voice", caller="+447700900123",
                    provider="twilio")
TEXT = FlowContext(channel_id="ch-wa", channel_type="whatsapp", caller="+447700900123")


def make(nodes: dict, first: str, **top) -> Flow:
    definition = {"name": "t", "start": "entry",
                  "nodes": {"entry": {"type": "entry", "next": first}, **nodes}, **top}
    return validate(definition)


def example(name: str) -> Flow:
    return validate(json.loads((EXAMPLES / f"{name}.json").read_text()))


def of(actions, kind):
    return [a for a in actions if isinstance(a, kind)]


def heard(engine: FlowEngine, actions) -> list:
    """The host finished playing every Speak in ``actions``: feed SpeechFinished for each."""
    out = []
    for speak in of(actions, Speak):
        out += engine.feed(SpeechFinished(speak.speech_id))
    return out


def timer(actions) -> str:
    (start,) = of(actions, StartTimer)
    return start.timer_id


def timer_seconds(actions) -> float:
    (start,) = of(actions, StartTimer)
    return start.seconds


# -- the scenario ----------------------------------------------------------------------


def test_dtmf_menu_to_support_agent_with_collected_variables():
    engine = FlowEngine(example("support_menu"), VOICE)
    actions = engine.start(NOW)
    assert [a.text for a in of(actions, Speak)] == [
        "Thanks for calling Acme.",
        "For sales press 1. For support press 2. To speak to an operator press 0."]
    # While the menu plays, the timer allows for its playing time; once heard: 6 s.
    assert timer_seconds(actions) > 6.0 + 10
    started = heard(engine, actions)
    assert started == [CancelTimer(timer(actions)), StartTimer(timer(started), 6.0)]
    actions = engine.feed(DigitReceived("2"))
    assert actions[0] == CancelTimer(timer(started))
    assert of(actions, Speak)[0].text.startswith("Please enter your account number")
    for digit in "4821":
        assert not of(engine.feed(DigitReceived(digit)), HandOff)
    actions = engine.feed(DigitReceived("#"))
    (handoff,) = of(actions, HandOff)
    assert actions[-1] is handoff
    assert handoff.agent_id == "support-agent"
    assert handoff.variables["account"] == "4821"
    assert handoff.variables["caller"] == "+447700900123"
    assert handoff.variables["channel"] == "ch-voice"
    assert engine.done and engine.end_reason == "hand_off"
    assert engine.feed(DigitReceived("1")) == []


def test_typed_digit_on_a_text_channel_selects_the_menu_option():
    engine = FlowEngine(example("support_menu"), TEXT)
    actions = engine.start(NOW)
    assert all(isinstance(a, SendText) for a in actions)
    actions = engine.feed(TextReceived("2"))
    assert actions == [SendText("Please enter your account number, then press hash.")]
    assert engine.feed(TextReceived(" 5512 ")) == [
        HandOff("support-agent", {**engine.variables, "account": "5512", "last_input": "5512"})]


@pytest.mark.parametrize("typed", ["2", " 2. ", "2)", "two", "Two"])
def test_text_menu_accepts_common_ways_of_typing_a_key(typed):
    engine = FlowEngine(example("support_menu"), TEXT)
    engine.start(NOW)
    engine.feed(TextReceived(typed))
    assert engine.node_id == "support_account"


def test_text_channels_never_start_input_timers():
    engine = FlowEngine(example("support_menu"), TEXT)
    actions = engine.start(NOW) + engine.feed(TextReceived("9")) + engine.feed(TextReceived("2"))
    assert not of(actions, StartTimer)


# -- speak ---------------------------------------------------------------------------------------


def test_speak_is_speech_on_voice_and_a_message_on_text():
    flow = make({"hi": {"type": "speak", "text": "Hi {{caller}}", "interruptible": False,
                        "next": "bye"},
                 "bye": {"type": "end", "message": "Bye"}}, "hi")
    voice = FlowEngine(flow, VOICE).start(NOW)
    assert voice[0] == Speak("Hi +447700900123", False, voice[0].speech_id)
    assert voice[1] == End("completed", "Bye")
    assert FlowEngine(flow, TEXT).start(NOW) == [SendText("Hi +447700900123"),
                                                 End("completed", "Bye")]


def test_web_channel_speaks_and_explicit_voice_flag_overrides():
    flow = make({"hi": {"type": "speak", "text": "Hi", "next": "bye"},
                 "bye": {"type": "end"}}, "hi")
    assert isinstance(FlowEngine(flow, FlowContext(channel_type="web")).start(NOW)[0], Speak)
    chat = FlowContext(channel_type="web", voice=False)
    assert FlowEngine(flow, chat).start(NOW) == [SendText("Hi"), End("completed", None)]


# -- dtmf_menu -----------------------------------------------------------------------------------


MENU = {"menu": {"type": "dtmf_menu", "prompt": "Press 1", "options": {"1": "one"},
                 "retries": 1, "timeout_s": 4, "invalid": "bad", "timeout": "slow",
                 "timeout_prompt": "Still there?"},
        "one": {"type": "end", "reason": "one"},
        "bad": {"type": "end", "reason": "bad"},
        "slow": {"type": "end", "reason": "slow"}}


def test_menu_invalid_key_reprompts_then_takes_invalid_branch():
    engine = FlowEngine(make(MENU, "menu"), VOICE)
    heard(engine, engine.start(NOW))
    actions = engine.feed(DigitReceived("7"))
    assert of(actions, Speak)[0].text == "Sorry, that is not a valid option. Press 1"
    assert of(actions, CancelTimer)
    actions = engine.feed(DigitReceived("8"))
    assert actions[-1] == End("bad")


def test_menu_timeouts_reprompt_then_take_timeout_branch():
    engine = FlowEngine(make(MENU, "menu"), VOICE)
    started = heard(engine, engine.start(NOW))
    actions = engine.feed(TimerFired(timer(started)))
    assert of(actions, Speak)[0].text == "Still there? Press 1"
    assert timer_seconds(actions) > 4.0 + 10                      # allowance while it plays
    restarted = heard(engine, actions)
    assert engine.feed(TimerFired(timer(started))) == []          # stale: the first timer
    assert engine.feed(TimerFired(timer(restarted)))[-1] == End("slow")


def test_menu_timeout_falls_back_to_invalid_then_to_end():
    nodes = {**MENU, "menu": {**MENU["menu"], "retries": 0}}
    del nodes["menu"]["timeout"]
    del nodes["slow"]
    engine = FlowEngine(make(nodes, "menu"), VOICE)
    started = heard(engine, engine.start(NOW))
    assert engine.feed(TimerFired(timer(started)))[-1] == End("bad")

    bare = {"menu": {"type": "dtmf_menu", "prompt": "Press 1", "options": {"1": "one"},
                     "retries": 0}, "one": {"type": "end"}}
    engine = FlowEngine(make(bare, "menu"), VOICE)
    started = heard(engine, engine.start(NOW))
    assert engine.feed(TimerFired(timer(started))) == [End("no_input")]
    engine = FlowEngine(make(bare, "menu"), VOICE)
    started = heard(engine, engine.start(NOW))
    # Ending straight from a waiting node still cancels its timer first.
    assert engine.feed(DigitReceived("5")) == [CancelTimer(timer(started)), End("invalid_input")]


def test_a_host_that_never_reports_speech_finished_cannot_hang_the_menu():
    engine = FlowEngine(make(MENU, "menu"), VOICE)
    actions = engine.start(NOW)
    assert of(engine.feed(TimerFired(timer(actions))), Speak)[0].text == "Still there? Press 1"


def test_menu_accepts_a_key_pressed_during_the_prompt():
    engine = FlowEngine(make(MENU, "menu"), VOICE)
    actions = engine.start(NOW)
    assert engine.feed(DigitReceived("1")) == [CancelTimer(timer(actions)), End("one")]


def test_menu_ignores_garbage_digits_and_stray_events():
    engine = FlowEngine(make(MENU, "menu"), VOICE)
    heard(engine, engine.start(NOW))
    for event in (DigitReceived("x"), DigitReceived("12"), ApiResult("r1", 200),
                  ClassifierResult("r1", "a"), SpeechFinished("nope"), TimerFired("t999")):
        assert engine.feed(event) == []
    assert engine.node_id == "menu"


def test_menu_by_speech_maps_digit_words():
    engine = FlowEngine(make(MENU, "menu"), VOICE)
    heard(engine, engine.start(NOW))
    assert engine.feed(UtteranceReceived("one"))[-1] == End("one")


# -- collect -------------------------------------------------------------------------------------


COLLECT = {"ask": {"type": "collect", "max_retries": 1, "failure": "failed", "next": "done",
                   "timeout_s": 3,
                   "values": [{"name": "pin", "prompt": "Your PIN?", "validation": "digits",
                               "min_length": 4, "max_length": 4},
                              {"name": "email", "prompt": "Email, {{pin}}?",
                               "validation": "email", "retry_prompt": "Email again?"}]},
           "done": {"type": "agent", "agent_id": "a"},
           "failed": {"type": "end", "reason": "failed"}}


def test_collect_several_values_by_text_with_validation():
    engine = FlowEngine(make(COLLECT, "ask"), TEXT)
    assert engine.start(NOW) == [SendText("Your PIN?")]
    assert engine.feed(TextReceived("12 34")) == [SendText("Email, 1234?")]
    assert engine.feed(TextReceived("nope")) == [SendText("Email again?")]
    (handoff,) = engine.feed(TextReceived(" Jane.Doe@Example.COM "))
    assert handoff.variables["pin"] == "1234"
    assert handoff.variables["email"] == "Jane.Doe@example.com"


def test_collect_failure_branch_after_max_retries_and_end_without_one():
    engine = FlowEngine(make(COLLECT, "ask"), TEXT)
    engine.start(NOW)
    assert engine.feed(TextReceived("12")) == [SendText("Sorry, I didn't get that.\nYour PIN?")]
    assert engine.feed(TextReceived("12345")) == [End("failed")]

    nodes = {**COLLECT, "ask": {**COLLECT["ask"], "max_retries": 0}}
    del nodes["ask"]["failure"]
    del nodes["failed"]
    engine = FlowEngine(make(nodes, "ask"), TEXT)
    engine.start(NOW)
    assert engine.feed(TextReceived("x")) == [End("collect_failed")]


def test_collect_dtmf_hash_star_and_max_length():
    engine = FlowEngine(make(COLLECT, "ask"), VOICE)
    heard(engine, engine.start(NOW))
    for digit in "98*":
        engine.feed(DigitReceived(digit))
    for digit in "123":
        engine.feed(DigitReceived(digit))
    actions = engine.feed(DigitReceived("4"))                  # max_length 4 submits at once
    assert of(actions, Speak)[0].text == "Email, 1234?"
    assert engine.variables["pin"] == "1234"


def test_collect_dtmf_timeout_submits_typed_digits_or_retries_when_none():
    flow = make({"ask": {"type": "collect", "next": "done", "max_retries": 1,
                         "values": [{"name": "n", "prompt": "Number?",
                                     "validation": "digits"}]},
                 "done": {"type": "end"}}, "ask")
    engine = FlowEngine(flow, VOICE)
    started = heard(engine, engine.start(NOW))
    actions = engine.feed(TimerFired(timer(started)))          # nothing typed: a retry
    assert of(actions, Speak)[0].text == "Sorry, I didn't get that. Number?"
    heard(engine, actions)
    engine.feed(DigitReceived("4"))
    actions = engine.feed(DigitReceived("2"))                  # inter-digit timer restarted
    assert engine.feed(TimerFired(timer(actions)))[-1] == End("completed")
    assert engine.variables["n"] == "42"


def test_collect_speech_needs_a_recogniser_and_falls_back_to_keypad():
    nodes = {"ask": {"type": "collect", "mode": "speech", "next": "done",
                     "values": [{"name": "city", "prompt": "City?"}]},
             "done": {"type": "end", "message": "{{city}}"}}
    with_asr = msgspec.structs.replace(VOICE, speech_input=True)
    engine = FlowEngine(make(nodes, "ask"), with_asr)
    engine.start(NOW)
    assert engine.feed(UtteranceReceived("Leeds"))[-1] == End("completed", "Leeds")

    engine = FlowEngine(make(nodes, "ask"), VOICE)             # no recogniser
    engine.start(NOW)
    assert engine.feed(UtteranceReceived("Leeds")) == []
    engine.feed(DigitReceived("7"))
    assert engine.feed(DigitReceived("#"))[-1] == End("completed", "7")


def test_collect_auto_mode_keeps_digits_on_the_keypad_and_accepts_typed_text():
    flow = make(COLLECT, "ask")
    engine = FlowEngine(flow, msgspec.structs.replace(VOICE, speech_input=True))
    engine.start(NOW)
    assert engine.feed(UtteranceReceived("one two three four")) == []   # digits: keypad only
    actions = engine.feed(TextReceived("1234"))                         # web widget typing
    assert engine.variables["pin"] == "1234"
    assert engine.feed(UtteranceReceived("jane at example dot com"))[-1].agent_id == "a"
    assert engine.variables["email"] == "jane@example.com"
    assert of(actions, Speak)


def test_collect_regex_validation():
    flow = make({"ask": {"type": "collect", "next": "done",
                         "values": [{"name": "ref", "prompt": "Ref?", "validation": "regex",
                                     "pattern": "[A-Z]{2}[0-9]{3}"}]},
                 "done": {"type": "end", "message": "{{ref}}"}}, "ask")
    engine = FlowEngine(flow, TEXT)
    engine.start(NOW)
    assert of(engine.feed(TextReceived("AB12")), SendText)
    assert engine.feed(TextReceived("AB123")) == [End("completed", "AB123")]


# -- condition -----------------------------------------------------------------------------------


def cond(rules, **top):
    nodes = {"c": {"type": "condition", "rules": rules, "default": "no"},
             "yes": {"type": "end", "reason": "yes"}, "no": {"type": "end", "reason": "no"}}
    return make(nodes, "c", **top)


@pytest.mark.parametrize("rule,variables,expected", [
    ({"op": "equals", "var": "x", "value": "a"}, {"x": "a"}, "yes"),
    ({"op": "equals", "var": "x", "value": "a"}, {"x": "A"}, "no"),
    ({"op": "equals", "var": "x", "value": "a", "ignore_case": True}, {"x": "A"}, "yes"),
    ({"op": "equals", "var": "x", "value": 3}, {"x": 3.0}, "yes"),
    ({"op": "not_equals", "var": "x", "value": "a"}, {"x": "b"}, "yes"),
    ({"op": "in", "var": "x", "value": ["a", "b"]}, {"x": "b"}, "yes"),
    ({"op": "in", "var": "x", "value": ["a", "b"]}, {"x": "c"}, "no"),
    ({"op": "regex", "var": "x", "value": "^\\+44"}, {"x": "+447700"}, "yes"),
    ({"op": "exists", "var": "x"}, {"x": "v"}, "yes"),
    ({"op": "exists", "var": "x"}, {"x": ""}, "no"),
    ({"op": "exists", "var": "x"}, {}, "no"),
    ({"op": "exists", "var": "x", "negate": True}, {}, "yes"),
    ({"op": "lt", "var": "x", "value": 10}, {"x": "9.5"}, "yes"),
    ({"op": "le", "var": "x", "value": 10}, {"x": 10}, "yes"),
    ({"op": "gt", "var": "x", "value": 10}, {"x": "10"}, "no"),
    ({"op": "ge", "var": "x", "value": "{{y}}"}, {"x": "5", "y": "5"}, "yes"),
    ({"op": "gt", "var": "x", "value": 1}, {"x": "many"}, "no"),
    ({"op": "equals", "var": "x.tier", "value": "vip"}, {"x": {"tier": "vip"}}, "yes"),
    ({"op": "equals", "var": "x", "value": "{{y}}"}, {"x": "p", "y": "p"}, "yes"),
])
def test_condition_operators(rule, variables, expected):
    flow = cond([{**rule, "next": "yes"}], variables={"x": "", "y": ""})
    engine = FlowEngine(flow, FlowContext(variables=variables))
    assert engine.start(NOW)[-1].reason == expected


@pytest.mark.parametrize("when,expected", [
    (dt.datetime(2026, 7, 6, 8, 30), "yes"),      # 09:30 in London (BST), Monday
    (dt.datetime(2026, 12, 7, 8, 30), "no"),      # 08:30 in London (GMT), Monday
    (dt.datetime(2026, 12, 5, 12, 0), "no"),      # Saturday
    (dt.datetime(2026, 12, 7, 17, 29), "yes"),    # 'to' is exclusive ...
    (dt.datetime(2026, 12, 7, 17, 30), "no"),     # ... at 17:30
])
def test_time_of_day_window_in_the_flows_timezone(when, expected):
    flow = cond([{"op": "time_between", "from": "09:00", "to": "17:30",
                  "days": ["mon", "tue", "wed", "thu", "fri"], "next": "yes"}],
                timezone="Europe/London")
    assert FlowEngine(flow).start(when)[-1].reason == expected


@pytest.mark.parametrize("hour,expected", [(23, "yes"), (2, "yes"), (12, "no")])
def test_time_window_across_midnight(hour, expected):
    flow = cond([{"op": "time_between", "from": "22:00", "to": "06:00", "next": "yes"}])
    when = dt.datetime(2026, 12, 7, hour, 0, tzinfo=dt.timezone.utc)
    assert FlowEngine(flow).start(when)[-1].reason == expected


def test_time_comes_from_the_latest_event():
    nodes = {"menu": {"type": "dtmf_menu", "prompt": "Go?", "options": {"1": "c"}},
             "c": {"type": "condition", "default": "no",
                   "rules": [{"op": "time_between", "from": "12:00", "to": "13:00",
                              "next": "yes"}]},
             "yes": {"type": "end", "message": "{{now_time}} {{now_weekday}}"},
             "no": {"type": "end", "reason": "no"}}
    engine = FlowEngine(make(nodes, "menu"), TEXT)
    engine.start(NOW)                                             # 10:00
    later = dt.datetime(2026, 12, 1, 12, 15, tzinfo=dt.timezone.utc)
    assert engine.feed(TextReceived("1", now=later)) == [End("completed", "12:15 tue")]


def test_first_matching_rule_wins():
    flow = cond([{"op": "exists", "var": "x", "next": "yes"},
                 {"op": "exists", "var": "x", "next": "no"}], variables={"x": "1"})
    assert FlowEngine(flow).start(NOW)[-1].reason == "yes"


# -- api_call ------------------------------------------------------------------------------------


API = {"call": {"type": "api_call", "method": "POST",
                "url": "https://crm.test/lookup?phone={{caller}}&q={{q}}",
                "headers": {"Authorization": "Bearer {{token}}"},
                "body": {"phone": "{{caller}}", "n": 1}, "timeout_s": 3,
                "extract": {"name": "$.customers[0].name", "vip": "$.customers[0].vip",
                            "tags": "$.tags", "gone": "$.missing.path"},
                "success": "ok", "error": "failed"},
       "ok": {"type": "end", "message": "{{name}} {{vip}} {{tags.1}}"},
       "failed": {"type": "end", "reason": "failed", "message": "{{api_status}}/{{api_error}}"}}


def start_api(context=VOICE):
    flow = make(API, "call", variables={"token": "tok\r\nX-Evil: 1", "q": "a b&c"})
    engine = FlowEngine(flow, context)
    actions = engine.start(NOW)
    (call,) = of(actions, CallApi)
    return engine, call, actions


def test_api_call_renders_the_request():
    engine, call, actions = start_api()
    assert call.method == "POST" and call.timeout_s == 3
    assert call.url == "https://crm.test/lookup?phone=%2B447700900123&q=a%20b%26c"
    assert call.headers["Authorization"] == "Bearer tok X-Evil: 1"      # no header injection
    assert call.headers["Content-Type"] == "application/json"
    assert json.loads(call.body) == {"phone": "+447700900123", "n": 1}
    assert of(actions, StartTimer)[0].seconds == 3 + engine_module.BACKSTOP_S


def test_api_call_success_extracts_variables():
    engine, call, actions = start_api()
    body = json.dumps({"customers": [{"name": "Ada", "vip": True}], "tags": ["a", "b"]})
    result = engine.feed(ApiResult(call.request_id, 200, body))
    assert result == [CancelTimer(timer(actions)), End("completed", "Ada true b")]
    assert engine.variables["gone"] == "" and engine.variables["api_status"] == "200"


def test_api_call_accepts_a_parsed_body():
    engine, call, _ = start_api(TEXT)
    result = engine.feed(ApiResult(call.request_id, 201, {"customers": [{"name": "Bo"}]}))
    assert result[-1] == End("completed", "Bo")


@pytest.mark.parametrize("result,message", [
    (dict(status=500, body="oops"), "500/HTTP 500"),
    (dict(status=404, body="{}"), "404/HTTP 404"),
    (dict(status=0, error="connection refused"), "/connection refused"),
])
def test_api_call_error_branch(result, message):
    engine, call, _ = start_api()
    assert engine.feed(ApiResult(call.request_id, **result))[-1] == End("failed", message)


def test_api_call_survives_hostile_nesting_in_the_answer():
    deep: list = []
    cur = deep
    for _ in range(100_000):
        cur.append({"name": []})
        cur = cur[0]["name"]
    engine, call, _ = start_api()
    text = "[" * 100_000 + "]" * 100_000
    assert engine.feed(ApiResult(call.request_id, 200, text))[-1].reason == "completed"
    engine, call, _ = start_api()
    parsed = {"customers": deep, "tags": deep}
    assert engine.feed(ApiResult(call.request_id, 200, parsed))[-1].reason == "completed"
    assert engine.variables["tags"] is None            # too deep to keep: dropped
    json.dumps(engine.snapshot())


def test_api_call_backstop_timer_takes_error_and_the_late_answer_is_ignored():
    engine, call, actions = start_api()
    assert engine.feed(TimerFired(timer(actions))) == [End("failed", "/timeout")]
    assert engine.feed(ApiResult(call.request_id, 200, "{}")) == []


def test_api_call_ignores_stale_results_and_caller_input_while_waiting():
    engine, call, _ = start_api()
    for event in (ApiResult("r-old", 200, "{}"), DigitReceived("1"), TextReceived("hi")):
        assert engine.feed(event) == []
    # 2xx with a body that is not JSON: success, and every extracted variable is "".
    assert engine.feed(ApiResult(call.request_id, 200, "not json"))[-1] == End("completed")
    assert engine.variables["name"] == ""


def test_crm_example_vip_transfers_and_timeout_falls_back():
    flow = example("crm_lookup")
    engine = FlowEngine(flow, VOICE)
    (call,) = of(engine.start(NOW), CallApi)
    actions = engine.feed(ApiResult(call.request_id, 200,
                                    {"customers": [{"name": "Ada", "tier": "VIP"}]}))
    assert of(actions, Speak)[0].text.startswith("Welcome back Ada")
    assert actions[-1] == Transfer("+14155550199")

    engine = FlowEngine(flow, VOICE)
    actions = engine.start(NOW)
    actions = engine.feed(TimerFired(timer(actions)))
    assert of(actions, Speak)[0].text == "Our records are unavailable right now."
    assert actions[-1].agent_id == "support-agent"


# -- classify ------------------------------------------------------------------------------------


CLASSIFY = {"cls": {"type": "classify", "prompt": "How can I help?",
                    "categories": [{"name": "billing", "keywords": ["bill", "refund"],
                                    "next": "billing"},
                                   {"name": "tech", "regex": "\\bcrash\\w*", "next": "tech"}],
                    "default": "other"},
            "billing": {"type": "end", "reason": "billing"},
            "tech": {"type": "end", "reason": "tech"},
            "other": {"type": "end", "reason": "other"}}


@pytest.mark.parametrize("text,expected", [
    ("My BILL is wrong", "billing"), ("I want a refund!", "billing"),
    ("it keeps CRASHING", "tech"), ("billion dollars", "other"), ("", "other"),
])
def test_classify_next_message_by_keywords_and_regex(text, expected):
    engine = FlowEngine(make(CLASSIFY, "cls"), TEXT)
    assert engine.start(NOW) == [SendText("How can I help?")]
    assert engine.feed(TextReceived(text))[-1].reason == expected
    assert engine.variables["category"] == ("" if expected == "other" else expected)


def test_classify_last_input_without_waiting():
    nodes = {**CLASSIFY, "cls": {**CLASSIFY["cls"], "input": "last"}}
    del nodes["cls"]["prompt"]
    engine = FlowEngine(make(nodes, "cls"),
                        msgspec.structs.replace(TEXT, variables={"last_input": "refund me"}))
    assert engine.start(NOW) == [End("billing")]


def test_classify_voice_no_input_takes_default():
    engine = FlowEngine(make(CLASSIFY, "cls"), VOICE)
    started = heard(engine, engine.start(NOW))
    assert engine.feed(TimerFired(timer(started))) == [End("other")]


def test_classify_external_classifier():
    nodes = {**CLASSIFY, "cls": {**CLASSIFY["cls"], "url": "https://nlu.test/classify"}}
    flow = make(nodes, "cls")

    def ask(text):
        engine = FlowEngine(flow, TEXT)
        engine.start(NOW)
        actions = engine.feed(TextReceived(text))
        (request,) = of(actions, Classify)
        assert request.url == "https://nlu.test/classify" and request.text == text
        return engine, request, actions

    engine, request, _ = ask("hello")
    assert engine.feed(ClassifierResult("stale", category="tech")) == []
    assert engine.feed(ClassifierResult(request.request_id, category="Tech"))[-1] == End("tech")
    engine, request, _ = ask("a refund")                       # error: keywords decide
    assert engine.feed(ClassifierResult(request.request_id, error="500"))[-1] == End("billing")
    engine, request, _ = ask("hello")                          # unknown category: default
    assert engine.feed(ClassifierResult(request.request_id, category="zzz"))[-1] == End("other")
    engine, request, actions = ask("my bill")                  # classifier never answers
    assert engine.feed(TimerFired(timer(actions)))[-1] == End("billing")


# -- agent, transfer, sms, end ----------------------------------------------------------------


def test_agent_passes_only_the_listed_variables():
    flow = make({"a": {"type": "agent", "agent_id": "x", "variables": ["caller", "lang"]}}, "a",
                variables={"lang": "en", "secret": "s"})
    assert FlowEngine(flow, VOICE).start(NOW) == [
        HandOff("x", {"caller": "+447700900123", "lang": "en"})]


@pytest.mark.parametrize("context,expected", [
    (VOICE, "transfer"),
    (msgspec.structs.replace(VOICE, provider="exotel"), "message"),
    (TEXT, "message"),
    (FlowContext(channel_type="web"), "message"),
])
def test_transfer_by_channel(context, expected):
    flow = make({"t": {"type": "transfer", "number": "+14155550100", "message": "Hold on"}}, "t")
    actions = FlowEngine(flow, context).start(NOW)
    if expected == "transfer":
        assert actions[-1] == Transfer("+14155550100")
        assert of(actions, Speak)[0].text == "Hold on"
    else:
        assert actions == [End("transfer", "Hold on")]


def test_transfer_without_message_on_text_gives_the_number_and_empty_number_fails():
    flow = make({"t": {"type": "transfer", "number": "+14155550100"}}, "t")
    assert FlowEngine(flow, TEXT).start(NOW) == [
        End("transfer", "You can reach us at +14155550100.")]
    flow = make({"t": {"type": "transfer", "number": "{{desk}}"}}, "t", variables={"desk": ""})
    assert FlowEngine(flow, VOICE).start(NOW) == [End("transfer_failed")]


def test_sms_is_queued_and_the_flow_goes_on():
    flow = make({"s": {"type": "sms", "channel_id": "sms-1", "text": "Ref {{ref}}", "next": "s2"},
                 "s2": {"type": "sms", "channel_id": "sms-1", "to": "{{nobody}}", "text": "x",
                        "next": "e"},
                 "e": {"type": "end", "message": "sent"}}, "s",
                variables={"ref": "42", "nobody": ""})
    # The second SMS has no recipient (an empty template) and is skipped, not sent to "".
    assert FlowEngine(flow, TEXT).start(NOW) == [SendSms("sms-1", "+447700900123", "Ref 42"),
                                                 End("completed", "sent")]


def test_end_message_is_templated_and_reason_kept():
    flow = make({"e": {"type": "end", "reason": "closed", "message": "Bye {{who}}"}}, "e",
                variables={"who": "Ann"})
    engine = FlowEngine(flow, TEXT)
    assert engine.start(NOW) == [End("closed", "Bye Ann")]
    assert engine.done and engine.end_reason == "closed"


# -- templating builtins ---------------------------------------------------------------------


def test_builtins_and_nested_initial_variables():
    flow = make({"e": {"type": "end", "message":
                       "{{now}}|{{now_date}}|{{now_hour}}|{{now_minute}}|{{flow}}|"
                       "{{channel_type}}|{{customer.name}}|{{customer.tags.0}}|{{customer.x.y}}"}},
                "e", timezone="America/New_York", variables={"customer": ""})
    context = msgspec.structs.replace(
        TEXT, variables={"customer": {"name": "Ada", "tags": ["gold"]}})
    (end,) = FlowEngine(flow, context).start(dt.datetime(2026, 11, 30, 15, 5))  # naive = UTC
    assert end.message == "2026-11-30 10:05|2026-11-30|10|5|t|whatsapp|Ada|gold|"


# -- snapshots -------------------------------------------------------------------------------


def test_snapshot_restore_between_messages():
    flow = make(COLLECT, "ask")
    engine = FlowEngine(flow, TEXT)
    engine.start(NOW)
    engine.feed(TextReceived("1234"))
    saved = json.loads(json.dumps(engine.snapshot()))          # through a JSON column
    resumed = FlowEngine.restore(flow, TEXT, saved)
    assert resumed.node_id == "ask" and resumed.variables["pin"] == "1234"
    assert resumed.feed(TextReceived("bad")) == engine.feed(TextReceived("bad"))
    assert resumed.snapshot() == engine.snapshot()
    assert resumed.feed(TextReceived("a@b.co"))[-1].variables["email"] == "a@b.co"


def test_snapshot_restore_keeps_pending_timer_and_request_ids():
    engine, call, actions = start_api()
    resumed = FlowEngine.restore(engine.flow, VOICE, engine.snapshot())
    assert resumed.feed(TimerFired(timer(actions)))[-1].reason == "failed"
    resumed = FlowEngine.restore(engine.flow, VOICE, engine.snapshot())
    assert resumed.feed(ApiResult(call.request_id, 200, "{}"))[-1].reason == "completed"


def test_restore_rejects_corrupt_snapshots_and_changed_flows():
    flow = make(COLLECT, "ask")
    engine = FlowEngine(flow, TEXT)
    engine.start(NOW)
    engine.feed(TextReceived("1234"))
    saved = engine.snapshot()
    with pytest.raises(FlowSnapshotError, match="corrupt"):
        FlowEngine.restore(flow, TEXT, {**saved, "attempts": "many"})
    with pytest.raises(FlowSnapshotError, match="version"):
        FlowEngine.restore(flow, TEXT, {**saved, "version": 99})
    with pytest.raises(FlowSnapshotError, match="no longer"):
        FlowEngine.restore(make({"x": {"type": "end"}}, "x"), TEXT, saved)
    shorter = {**COLLECT, "ask": {**COLLECT["ask"], "values": COLLECT["ask"]["values"][:1]}}
    with pytest.raises(FlowSnapshotError, match="changed"):
        FlowEngine.restore(make(shorter, "ask"), TEXT, saved)
    with pytest.raises(FlowSnapshotError):
        FlowEngine.restore(flow, TEXT, "garbage")
    retyped = {"ask": {"type": "speak", "text": "hi", "next": "done"},
               "done": {"type": "agent", "agent_id": "a"}}
    with pytest.raises(FlowSnapshotError, match="no longer waits"):
        FlowEngine.restore(make(retyped, "ask"), TEXT, saved)


# -- guards and misuse -------------------------------------------------------------------------


def unvalidated(definition) -> Flow:
    return msgspec.convert(definition, Flow)


def test_loop_guard_ends_a_loop_that_skipped_validation():
    flow = unvalidated({"name": "loop", "start": "e", "nodes": {
        "e": {"type": "entry", "next": "c"},
        "c": {"type": "condition", "rules": [{"op": "exists", "var": "x", "next": "s"}],
              "default": "s"},
        "s": {"type": "speak", "text": "again", "next": "c"}}})
    actions = FlowEngine(flow, TEXT).start(NOW)
    assert actions[-1] == End("loop")
    assert len(actions) <= engine_module.MAX_STEPS_PER_FEED


def test_total_step_guard(monkeypatch):
    monkeypatch.setattr(engine_module, "MAX_TOTAL_STEPS", 20)
    flow = make({"m": {"type": "dtmf_menu", "prompt": "p", "options": {"1": "s"}},
                 "s": {"type": "speak", "text": "again", "next": "m"}}, "m")
    engine = FlowEngine(flow, TEXT)
    engine.start(NOW)
    ends = []
    for _ in range(30):
        ends += of(engine.feed(TextReceived("1")), End)
    assert ends == [End("loop")]


def test_dangling_edge_in_an_unvalidated_flow_ends_cleanly():
    flow = unvalidated({"name": "x", "start": "e",
                        "nodes": {"e": {"type": "entry", "next": "nowhere"}}})
    assert FlowEngine(flow).start(NOW) == [End("invalid_flow")]


def test_misuse_is_a_clear_error_and_early_events_are_ignored():
    flow = example("support_menu")
    engine = FlowEngine(flow, VOICE)
    assert engine.feed(DigitReceived("1")) == []                  # before start
    with pytest.raises(TypeError):
        engine.start("now")
    engine.start(NOW)
    with pytest.raises(RuntimeError):
        engine.start(NOW)
    with pytest.raises(TypeError):
        engine.feed({"type": "digit", "digit": "1"})
    with pytest.raises(TypeError):
        FlowEngine({"name": "raw dict"}, VOICE)
    with pytest.raises(ValueError):
        FlowEngine(flow, FlowContext(variables={"x": object()})).start(NOW)


@pytest.mark.parametrize("garbage", [None, 5, [], {}, b"1", object(), 1.5])
def test_events_with_garbage_fields_are_ignored_or_count_as_empty(garbage):
    flows = [make(MENU, "menu"), make(COLLECT, "ask"), make(CLASSIFY, "cls"),
             make(API, "call", variables={"token": "", "q": ""})]
    for flow in flows:
        for context in (VOICE, TEXT):
            engine = FlowEngine(flow, context)
            engine.start(NOW)
            for event in (DigitReceived(garbage), TextReceived(garbage),
                          UtteranceReceived(garbage), TimerFired(garbage),
                          SpeechFinished(garbage), ApiResult(garbage, status=garbage,
                                                             body=garbage, error=garbage),
                          ClassifierResult(garbage, category=garbage, error=garbage),
                          TextReceived("x", now=garbage)):
                assert isinstance(engine.feed(event), list)
            json.dumps(engine.snapshot())


def test_wrongly_typed_event_fields_do_not_crash():
    engine = FlowEngine(make(COLLECT, "ask"), TEXT)
    engine.start(NOW)
    assert engine.feed(TextReceived(None)) == [SendText("Sorry, I didn't get that.\nYour PIN?")]
    assert engine.feed(DigitReceived(5)) == []
    assert engine.feed(TextReceived("x" * 100_000))[-1] == End("failed")


def test_actions_and_events_are_json_for_hosts_and_simulators():
    engine = FlowEngine(example("support_menu"), VOICE)
    encoded = msgspec.json.encode(engine.start(NOW))
    assert json.loads(encoded)[0]["type"] == "speak"
    event = msgspec.json.decode(b'{"type":"digit","digit":"2"}', type=DigitReceived)
    assert event == DigitReceived("2")
