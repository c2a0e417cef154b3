"""The flow simulator behind POST /api/v1/flows/{id}/simulate."""
import datetime as dt
import json
import pathlib

import pytest

from gateway.flows import FlowContext, validate
from gateway.flows.simulate import SimulationError, simulate

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples" / "flows"
NOW = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.timezone.utc)       # a Monday
VOICE = FlowContext(channel_type="voice", provider="twilio", caller="+447700900123")


def example(name):
    return validate(json.loads((EXAMPLES / f"{name}.json").read_text()))


def actions(result, kind=None):
    out = [entry["action"] for entry in result.transcript if "action" in entry]
    return [a for a in out if kind is None or a["type"] == kind]


def test_dtmf_menu_by_keypad_with_a_timeout_retry():
    result = simulate(example("support_menu"),
                      [{"digits": "2"}, {"timeout": True}, {"digits": "4821#"}],
                      context=VOICE, now=NOW)
    assert result.done and result.end_reason == "hand_off"
    assert [a["text"] for a in actions(result, "speak")][-1].startswith("That did not look")
    assert actions(result)[-1]["variables"]["account"] == "4821"
    assert not actions(result, "start_timer")                    # left out by default
    assert result.transcript[2] == {"input": {"digits": "2"}}


def test_timers_can_be_shown():
    result = simulate(example("support_menu"), [{"digits": "1"}], context=VOICE, now=NOW,
                      include_timers=True)
    # the menu's timer with its playing-time allowance, then the 6 s one once it was heard
    assert [a["type"] for a in actions(result)] == [
        "speak", "speak", "start_timer", "cancel_timer", "start_timer", "cancel_timer",
        "hand_off"]
    assert actions(result)[4]["seconds"] == 6.0


def test_text_channel_and_scripted_api_answer():
    result = simulate(example("crm_lookup"),
                      [{"api": {"status": 200, "body": {"customers": [{"name": "Ada"}]}}}],
                      now=NOW)
    assert actions(result, "send_text") == [
        {"type": "send_text", "text": "Hello Ada, you have  open tickets."}]
    assert result.variables["customer_name"] == "Ada"


def test_unanswered_request_takes_the_error_path():
    result = simulate(example("crm_lookup"), [{"text": "my invoice"}], now=NOW)
    texts = [a["text"] for a in actions(result, "send_text")]
    assert texts[0] == "Our records are unavailable right now."
    assert result.variables["api_error"] == "not simulated"
    assert result.done


def test_time_can_move_during_the_script():
    flow = example("business_hours")
    assert actions(simulate(flow, [], now=NOW))[-1]["agent_id"] == "day-desk"
    evening = dt.datetime(2026, 1, 5, 20, 0, tzinfo=dt.timezone.utc)
    assert actions(simulate(flow, [], now=evening))[-1]["agent_id"] == "after-hours-agent"


def test_script_stops_when_the_flow_ends():
    result = simulate(example("crm_lookup"),
                      [{"api": {"status": 404}}, {"text": "help"}, {"text": "never read"}],
                      now=NOW)
    assert result.done and {"input": {"text": "never read"}} not in result.transcript


@pytest.mark.parametrize("inputs", [
    "digits", [{"text": "a", "digits": "1"}], [{}], [{"tex": "a"}], [{"timeout": False}],
    [{"text": 5}], [{"text": "x"}] * 201, [{"api": {"status": "ok"}}],
    [{"digits": "1" * 65}], [{"digits": ""}], [{"text": "x" * 4001}],
])
def test_malformed_scripts_are_a_clear_error(inputs):
    with pytest.raises(SimulationError):
        simulate(example("support_menu"), inputs, now=NOW)


def test_deeply_nested_api_answer_is_refused():
    deep: list = []
    cur = deep
    for _ in range(100_000):
        cur.append([])
        cur = cur[0]
    with pytest.raises(SimulationError, match="deeply"):
        simulate(example("crm_lookup"), [{"api": {"body": deep}}], now=NOW)


def test_event_budget_bounds_a_long_script():
    result = simulate(example("support_menu"), [{"digits": "9" * 50}] * 3, context=VOICE,
                      now=NOW, max_events=5)
    assert len(result.transcript) < 40
