"""Property tests: random definitions never crash validation; random event sequences never crash the
engine, always end within the step guards, keep at most one timer alive, and a snapshot restored at
any point behaves exactly like the engine it was taken from."""
import copy
import datetime as dt
import json
import pathlib

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.flows import (TERMINAL, Action, ApiResult, CallApi, CancelTimer, Classify,
                           ClassifierResult, DigitReceived, FlowContext, FlowEngine,
                           FlowValidationError, MAX_STEPS_PER_FEED, Speak, SpeechFinished,
                           StartTimer, TextReceived, TimerFired, UtteranceReceived, validate)
from gateway.flows.model import waits_for_caller

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples" / "flows"
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Every node type, with loops that pass through input nodes.
EVERYTHING = {
    "name": "everything", "start": "entry", "timezone": "Asia/Kolkata",
    "variables": {"token": "t"},
    "nodes": {
        "entry": {"type": "entry", "next": "hours"},
        "hours": {"type": "condition", "default": "greet", "rules": [
            {"op": "time_between", "from": "22:00", "to": "06:00", "next": "night"}]},
        "night": {"type": "speak", "text": "Late, {{now_time}}", "next": "lookup"},
        "greet": {"type": "speak", "text": "Hello {{caller}}", "next": "lookup"},
        "lookup": {"type": "api_call", "method": "POST", "url": "https://crm.test/{{caller}}",
                   "headers": {"Authorization": "Bearer {{token}}"}, "body": {"q": "{{caller}}"},
                   "extract": {"name": "$.name", "tier": "$.tiers[0]"},
                   "success": "menu", "error": "menu"},
        "menu": {"type": "dtmf_menu", "prompt": "Hi {{name}}: 1 info, 2 topic, 3 sms, 4 person",
                 "options": {"1": "info", "2": "topic", "3": "sms", "4": "person", "9": "again"},
                 "retries": 1, "invalid": "bad", "timeout": "agent"},
        "again": {"type": "speak", "text": "Again", "next": "menu"},
        "info": {"type": "collect", "max_retries": 1, "failure": "menu", "next": "route",
                 "values": [{"name": "pin", "prompt": "PIN?", "validation": "digits",
                             "max_length": 4},
                            {"name": "mail", "prompt": "Email?", "validation": "email"},
                            {"name": "ref", "prompt": "Ref?", "validation": "regex",
                             "pattern": "[A-Z]{2}[0-9]"}]},
        "route": {"type": "condition", "default": "last", "rules": [
            {"op": "equals", "var": "tier", "value": "gold", "ignore_case": True,
             "next": "agent"},
            {"op": "gt", "var": "pin", "value": 5000, "next": "person"}]},
        "last": {"type": "classify", "input": "last", "default": "menu", "categories": [
            {"name": "done", "keywords": ["bye"], "next": "bad"}]},
        "topic": {"type": "classify", "prompt": "Topic?", "url": "https://nlu.test/c",
                  "default": "menu", "categories": [
                      {"name": "billing", "keywords": ["bill"], "next": "agent"},
                      {"name": "tech", "regex": "crash", "next": "person"}]},
        "sms": {"type": "sms", "channel_id": "sms-1", "text": "Ref {{ref}}", "next": "menu"},
        "person": {"type": "transfer", "number": "+14155550100", "message": "Connecting"},
        "agent": {"type": "agent", "agent_id": "a1"},
        "bad": {"type": "end", "reason": "bye", "message": "Bye {{name}}"},
    },
}

FLOWS = [validate(EVERYTHING)] + [validate(json.loads(p.read_text()))
                                  for p in sorted(EXAMPLES.glob("*.json"))]
CONTEXTS = [
    FlowContext(channel_id="v", channel_type="voice", caller="+4420", provider="twilio"),
    FlowContext(channel_id="v", channel_type="voice", caller="+4420", provider="exotel",
                speech_input=True),
    FlowContext(channel_id="w", channel_type="whatsapp", caller="+4420"),
    FlowContext(channel_id="b", channel_type="web"),
]
TEXTS = st.one_of(st.sampled_from(["1", "2", "3", "4", "9", "two", "1234", "9999", "a@b.co",
                                   "AB1", "bill", "crash", "bye", "", "#", " 2. "]),
                  st.text(max_size=40))
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                    | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)
BODIES = st.one_of(JSON, st.sampled_from(['{"name": "Ada", "tiers": ["Gold"]}', "not json",
                                          '{"customers": [{"name": "B", "tier": "vip"}]}']))
TIMES = st.none() | st.datetimes(min_value=dt.datetime(2020, 1, 1),
                                 max_value=dt.datetime(2030, 1, 1),
                                 timezones=st.none() | st.just(dt.timezone.utc))
OPS = st.one_of(
    st.tuples(st.just("digit"), st.sampled_from(list("0123456789*#x") + ["12", ""])),
    st.tuples(st.just("text"), TEXTS),
    st.tuples(st.just("utterance"), TEXTS),
    st.tuples(st.just("timer"), st.integers(0, 3)),
    st.tuples(st.just("speech"), st.integers(0, 3)),
    st.tuples(st.just("api"), st.integers(0, 3), st.sampled_from([0, 200, 201, 404, 500]),
              BODIES, st.none() | st.just("refused")),
    st.tuples(st.just("classifier"), st.integers(0, 3),
              st.none() | st.sampled_from(["billing", "tech", "Tech", "nope"]),
              st.none() | st.just("500")),
    st.tuples(st.just("snapshot")),
    # A plausible answer for wherever the engine is (so sequences get deep into the flows),
    # three times in the list to weigh it up.
    st.tuples(st.just("answer"), st.integers(0, 5)),
    st.tuples(st.just("answer"), st.integers(0, 5)),
    st.tuples(st.just("answer"), st.integers(0, 5)),
)
SAMPLES = {"digits": "1234", "email": "a@b.co", "regex": "AB1", "any": "Ada"}


class Host:
    """Plays the host: remembers ids from actions so events can refer to real (or stale) ones."""

    def __init__(self):
        self.timers: list[str] = []
        self.live: set[str] = set()
        self.speeches: list[str] = []
        self.requests: list[str] = []
        self.terminal = 0

    def take(self, actions) -> None:
        assert isinstance(actions, list)
        assert len(actions) <= 3 * MAX_STEPS_PER_FEED + 5
        for i, action in enumerate(actions):
            assert isinstance(action, Action)
            if isinstance(action, TERMINAL):
                self.terminal += 1
                assert i == len(actions) - 1, "a terminal action comes last"
            elif isinstance(action, StartTimer):
                assert action.seconds > 0
                self.timers.append(action.timer_id)
                self.live.add(action.timer_id)
            elif isinstance(action, CancelTimer):
                assert action.timer_id in self.live, "cancels only a live timer"
                self.live.discard(action.timer_id)
            elif isinstance(action, Speak):
                self.speeches.append(action.speech_id)
            elif isinstance(action, (CallApi, Classify)):
                self.requests.append(action.request_id)
        assert len(self.live) <= 1, "the engine waits on one timer at a time"
        assert self.terminal <= 1

    @staticmethod
    def pick(ids: list[str], i: int, stale: str) -> str:
        """0: the latest id (what a real host sends), 1: the one before, 2: the first, 3: stale."""
        if not ids or i == 3:
            return stale
        return ids[(-1, -2, 0)[i]] if len(ids) > 1 else ids[0]

    def answer(self, engine: FlowEngine, k: int, now):
        """Input the current node accepts (k picks among the choices), or a result it waits for."""
        node = engine.flow.nodes.get(engine.node_id)
        kind = type(node).__name__
        if kind == "DtmfMenuNode":
            keys = sorted(node.options)
            return DigitReceived(keys[k % len(keys)], now=now)
        if kind == "CollectNode":
            spec = node.values[engine.snapshot()["value_index"]]
            return TextReceived(SAMPLES[spec.validation], now=now)
        if kind == "ClassifyNode" and engine.snapshot()["request_id"]:
            names = [c.name for c in node.categories]
            return ClassifierResult(self.requests[-1], category=names[k % len(names)], now=now)
        if kind == "ClassifyNode":
            words = [c.keywords[0] for c in node.categories if c.keywords] + ["nothing"]
            return UtteranceReceived(words[k % len(words)], now=now)
        if kind == "ApiCallNode" and self.requests:
            return ApiResult(self.requests[-1], status=200,
                             body={"name": "Ada", "tiers": ["gold", "x"][k % 2:]}, now=now)
        return TimerFired(self.timers[-1] if self.timers else "t-none", now=now)

    def event(self, op, now, engine=None):
        kind = op[0]
        if kind == "answer":
            return self.answer(engine, op[1], now)
        if kind == "digit":
            return DigitReceived(op[1], now=now)
        if kind == "text":
            return TextReceived(op[1], now=now)
        if kind == "utterance":
            return UtteranceReceived(op[1], now=now)
        if kind == "timer":
            timer_id = self.pick(self.timers, op[1], "t-stale")
            self.live.discard(timer_id)                    # a timer fires once
            return TimerFired(timer_id, now=now)
        if kind == "speech":
            return SpeechFinished(self.pick(self.speeches, op[1], "s-stale"), now=now)
        if kind == "api":
            return ApiResult(self.pick(self.requests, op[1], "r-stale"), status=op[2],
                             body=op[3], error=op[4], now=now)
        return ClassifierResult(self.pick(self.requests, op[1], "r-stale"), category=op[2],
                                error=op[3], now=now)


@pytest.mark.parametrize("flow", FLOWS, ids=[f.name for f in FLOWS])
@settings(SETTINGS, max_examples=80)
@given(context=st.sampled_from(CONTEXTS),
       start=st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2030, 1, 1)),
       ops=st.lists(st.tuples(OPS, TIMES), max_size=40))
def test_random_event_sequences_never_crash_and_always_terminate(flow, context, start, ops):
    host = Host()
    engine = FlowEngine(flow, context)
    twin = None                                  # restored from a snapshot; must act identically
    host.take(engine.start(start))
    for op, now in ops:
        json.dumps(engine.snapshot())
        if op[0] == "snapshot":
            twin = FlowEngine.restore(flow, context, json.loads(json.dumps(engine.snapshot())))
            assert twin.snapshot() == engine.snapshot()
            continue
        event = host.event(op, now, engine)
        actions = engine.feed(event)
        host.take(actions)
        if twin is not None:
            assert twin.feed(event) == actions
        if engine.done:
            assert host.terminal == 1
            assert not host.live, "an ended flow leaves no timer running"
            assert engine.feed(DigitReceived("1")) == [] and engine.feed(TextReceived("x")) == []
    if host.terminal:
        assert engine.done


def test_a_flow_ends_if_the_caller_never_answers():
    """Firing timers alone walks every example to its end on voice (every wait has a timer, even
    when the host never reports SpeechFinished); on text it stops only where the caller is
    asked something."""
    for flow in FLOWS:
        for context in CONTEXTS:
            host = Host()
            engine = FlowEngine(flow, context)
            host.take(engine.start(dt.datetime(2026, 1, 5, 12, 0)))
            for _ in range(100):
                if engine.done or not host.live:
                    break
                (timer_id,) = host.live
                host.live.discard(timer_id)
                host.take(engine.feed(TimerFired(timer_id)))
            if context.speaks:
                assert engine.done, (flow.name, context.channel_type, engine.node_id)
            else:
                assert engine.done or waits_for_caller(flow.nodes[engine.node_id])


# -- validation never crashes -------------------------------------------------------------------


NODE_FIELDS = sorted({key for node in EVERYTHING["nodes"].values() for key in node}
                     | {"options", "values", "rules", "categories", "extract", "body"})


@SETTINGS
@given(definition=JSON)
def test_validate_rejects_arbitrary_json_cleanly(definition):
    try:
        validate(definition)
    except FlowValidationError as exc:
        assert exc.errors


@settings(SETTINGS, max_examples=100)
@given(data=st.data())
def test_validate_survives_mutated_flows_and_whatever_passes_runs(data):
    definition = copy.deepcopy(EVERYTHING)
    if data.draw(st.booleans()):
        top = data.draw(st.sampled_from(["name", "start", "timezone", "variables",
                                         "description", "extra"]))
        definition[top] = data.draw(JSON | st.sampled_from(["America", "menu", "entry"]))
    for _ in range(data.draw(st.integers(1, 3))):
        node_id = data.draw(st.sampled_from(sorted(definition["nodes"])))
        node = definition["nodes"][node_id]
        field = data.draw(st.sampled_from(NODE_FIELDS))
        if data.draw(st.booleans()) and field in node:
            del node[field]
        else:
            node[field] = data.draw(JSON | st.sampled_from(sorted(definition["nodes"])))
    try:
        flow = validate(definition, channel_type=data.draw(st.sampled_from(
            [None, "voice", "whatsapp", "web"])), provider="twilio")
    except FlowValidationError as exc:
        assert all(e.path.startswith("$") for e in exc.errors)
        return
    host = Host()
    engine = FlowEngine(flow, data.draw(st.sampled_from(CONTEXTS)))
    host.take(engine.start(dt.datetime(2026, 1, 5, 12, 0)))
    for op in data.draw(st.lists(OPS.filter(lambda o: o[0] != "snapshot"), max_size=15)):
        host.take(engine.feed(host.event(op, None, engine)))


# -- the simulator never crashes -------------------------------------------------------------


SCRIPT_ITEMS = st.one_of(
    st.builds(lambda t: {"text": t}, TEXTS), st.builds(lambda t: {"utterance": t}, TEXTS),
    st.builds(lambda d: {"digits": d}, st.text("0123456789*#", min_size=1, max_size=6)),
    st.just({"timeout": True}),
    st.builds(lambda s, b: {"api": {"status": s, "body": b}},
              st.sampled_from([200, 500]), BODIES),
    st.builds(lambda c: {"category": c}, st.sampled_from(["billing", "tech", "x"])),
    JSON,
)


@settings(SETTINGS, max_examples=100)
@given(flow=st.sampled_from(FLOWS), context=st.sampled_from(CONTEXTS),
       script=st.lists(SCRIPT_ITEMS, max_size=12) | JSON)
def test_simulate_returns_a_transcript_or_a_clear_error(flow, context, script):
    from gateway.flows import SimulationError, simulate
    try:
        result = simulate(flow, script, context=context, now=dt.datetime(2026, 1, 5, 12))
    except SimulationError:
        return
    json.dumps(msgspec.to_builtins(result))
