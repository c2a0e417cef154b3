"""Flows in the control API (live ``converse control`` on SQLite and PostgreSQL): the engine's
validation on create/patch (422 listing {node, path, message}), validation against a channel's
type/provider on assignment and when an assigned flow changes, and POST /flows/{id}/simulate."""
from __future__ import annotations

import copy

import httpx
import pytest

from flow_helpers import example_flow

MINIMAL = {"start": "s", "nodes": {"s": {"type": "entry", "next": "e"}, "e": {"type": "end"}}}


@pytest.fixture
def api(control_server):
    with control_server.client() as client:
        yield client


def _create(api, definition, name="flow") -> httpx.Response:
    return api.post("/api/v1/flows", json={"name": name, "definition": definition})


def _support_menu(api) -> dict:
    """The example menu with its agents created (ids substituted)."""
    flow = example_flow("support_menu")
    for node, name in (("sales", "Sales"), ("support", "Support")):
        r = api.post("/api/v1/agents", json={"name": name, "kind": "echo"})
        assert r.status_code == 201, r.text
        flow["nodes"][node]["agent_id"] = r.json()["id"]
    return flow


def test_create_lists_every_problem_with_node_and_path(api):
    bad = {"start": "entry", "nodes": {
        "entry": {"type": "entry", "next": "menu"},
        "menu": {"type": "dtmf_menu", "prompt": "Press 1", "options": {"1": "nowhere", "2": "bye"}},
        "bye": {"type": "end", "message": "Bye {{undeclared}}"},
        "orphan": {"type": "end"}}}
    r = _create(api, bad)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "validation"
    problems = {(e["node"], e["path"]) for e in body["errors"]}
    assert ("menu", "$.definition.nodes.menu.options.1") in problems      # dangling edge
    assert any(node == "bye" and "message" in path for node, path in problems)   # variable
    assert any(node == "orphan" for node, _ in problems)                   # unreachable
    assert body["field"] == body["errors"][0]["path"]
    assert all(set(e) == {"node", "path", "message"} and e["message"] for e in body["errors"])
    assert _create(api, [1, 2]).status_code == 422
    assert _create(api, MINIMAL).status_code == 201


def test_patch_validates_and_keeps_the_old_definition(api):
    flow = _create(api, MINIMAL).json()
    broken = copy.deepcopy(MINIMAL)
    broken["nodes"]["s"]["next"] = "gone"
    r = api.patch(f"/api/v1/flows/{flow['id']}", json={"definition": broken})
    assert r.status_code == 422 and r.json()["errors"][0]["node"] == "s"
    assert api.get(f"/api/v1/flows/{flow['id']}").json()["definition"] == MINIMAL
    good = copy.deepcopy(MINIMAL)
    good["nodes"]["e"]["message"] = "Bye {{caller}}"
    r = api.patch(f"/api/v1/flows/{flow['id']}", json={"definition": good})
    assert r.status_code == 200 and r.json()["definition"] == good


def test_assignment_checks_the_channel(api, control_server):
    # a flow handing over to an agent that does not exist cannot be assigned
    flow = example_flow("support_menu")
    ghost = _create(api, flow).json()["id"]
    r = api.post("/api/v1/channels", json={"type": "web", "flow_id": ghost,
                                           "allowed_origins": ["https://a.example"]})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["field"] == "$.flow_id" and ghost in body["message"]
    assert {e["node"] for e in body["errors"]} == {"sales", "support"}
    assert all(e["path"].startswith("$.definition.nodes.") for e in body["errors"])
    # with its agents it fits a web channel and a Twilio voice channel...
    flow_id = _create(api, _support_menu(api)).json()["id"]
    r = api.post("/api/v1/channels", json={"type": "web", "flow_id": flow_id,
                                           "allowed_origins": ["https://a.example"]})
    assert r.status_code == 201, r.text
    tw = control_server.twilio
    r = api.post("/api/v1/channels", json={"type": "voice", "provider": "twilio",
                                           "credentials": tw.creds, "flow_id": flow_id})
    assert r.status_code == 201, r.text
    voice = r.json()["id"]
    # ... but not an Exotel one (its operator node transfers the call, Exotel cannot)
    r = api.post("/api/v1/channels", json={"type": "voice", "provider": "exotel",
                                           "credentials": control_server.exotel.creds})
    assert r.status_code == 201, r.text
    r = api.patch(f"/api/v1/channels/{r.json()['id']}", json={"flow_id": flow_id})
    assert r.status_code == 422, r.text
    assert [e["node"] for e in r.json()["errors"]] == ["operator"]
    # changing the assigned flow so that it no longer fits its voice channel is refused
    definition = _support_menu(api)
    definition["nodes"]["support_account"]["values"][0]["validation"] = "email"
    r = api.patch(f"/api/v1/flows/{flow_id}", json={"definition": definition})
    assert r.status_code == 422, r.text
    assert voice in r.json()["message"]
    assert r.json()["errors"][0]["path"] == \
        "$.definition.nodes.support_account.values.0.validation"


def test_simulate_a_dtmf_menu(api):
    definition = _support_menu(api)
    flow_id = _create(api, definition).json()["id"]
    r = api.post(f"/api/v1/flows/{flow_id}/simulate", json={
        "channel_type": "voice", "provider": "twilio", "caller": "+15550001111",
        "inputs": [{"digits": "2"}, {"digits": "12345#"}]})
    assert r.status_code == 200, r.text
    result = r.json()
    actions = [e["action"] for e in result["transcript"] if "action" in e]
    assert actions[0] == {"type": "speak", "text": "Thanks for calling Acme.",
                          "interruptible": True, "speech_id": actions[0]["speech_id"]}
    assert actions[-1]["type"] == "hand_off"
    assert actions[-1]["agent_id"] == definition["nodes"]["support"]["agent_id"]
    assert actions[-1]["variables"]["account"] == "12345"
    assert actions[-1]["variables"]["caller"] == "+15550001111"
    assert result["done"] and result["variables"]["account"] == "12345"
    # on a text channel the same menu takes the key typed as a message
    r = api.post(f"/api/v1/flows/{flow_id}/simulate", json={
        "channel_type": "whatsapp", "inputs": [{"text": "2"}, {"text": "987654"}]})
    actions = [e["action"] for e in r.json()["transcript"] if "action" in e]
    assert actions[0]["type"] == "send_text" and actions[-1]["variables"]["account"] == "987654"
    # timeouts only exist on voice: three silent tries go to the operator (a transfer)
    r = api.post(f"/api/v1/flows/{flow_id}/simulate", json={
        "channel_type": "voice", "provider": "twilio",
        "inputs": [{"timeout": True}] * 3})
    assert r.json()["transcript"][-1]["action"] == {"type": "transfer", "number": "+14155550100"}


def test_simulate_errors(api):
    flow_id = _create(api, MINIMAL).json()["id"]
    r = api.post(f"/api/v1/flows/{flow_id}/simulate", json={"inputs": [{"bogus": 1}]})
    assert r.status_code == 422 and r.json()["field"] == "$.inputs"
    r = api.post(f"/api/v1/flows/{flow_id}/simulate", json={"channel_type": "fax"})
    assert r.status_code == 422
    assert api.post("/api/v1/flows/fl_nope/simulate", json={}).status_code == 404
    r = api.post(f"/api/v1/flows/{flow_id}/simulate", json={})
    assert r.status_code == 200 and r.json()["end_reason"] == "completed"


def test_openapi_lists_simulate(control_server):
    doc = httpx.get(control_server.base_url + "/api/v1/openapi.json").json()
    op = doc["paths"]["/api/v1/flows/{flow_id}/simulate"]["post"]
    assert "422" in op["responses"] and "200" in op["responses"]
    assert "FlowInvalid" in doc["components"]["schemas"]
