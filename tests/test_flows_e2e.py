"""Flows end to end through the real processes on 127.0.0.1: the control plane (``converse
control``, SQLite) with the provider emulators, the gateway (``converse gateway``, espeak-ng TTS)
and ``control.simulate`` playing Twilio; an external WebSocket agent in the test records its
``start``. WhatsApp: signed Meta webhooks into the messaging worker, replies read from the
emulator, and a control-plane restart between two messages. Every wait is bounded; no
wall-clock thresholds.
"""
from __future__ import annotations

import contextlib
import shutil
import subprocess
import time

import httpx
import numpy as np
import pytest
import trio

from conftest import require
from control.simulate import CallSpec, simulate_call
from fixtures_control import free_port, reserve_port, start_control_server, start_gateway_cli
from flow_helpers import RecordingAgent, example_flow

WAIT_S = 60.0                       # bounds on waiting, not measurements


def wait_for(predicate, what: str, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Stack:
    def __init__(self, control, gateway_port: int, agent_port: int):
        self.control = control
        self.gateway_port = gateway_port
        self.agent_port = agent_port
        self.ids: dict[str, str] = {}


def _support_menu(api, agent_port: int) -> str:
    """The example DTMF menu, its agents created: support = the recording agent."""
    flow = example_flow("support_menu")
    r = api.post("/api/v1/agents", json={"name": "Support", "kind": "websocket",
                                         "config": {"url": f"ws://127.0.0.1:{agent_port}/"}})
    assert r.status_code == 201, r.text
    flow["nodes"]["support"]["agent_id"] = r.json()["id"]
    r = api.post("/api/v1/agents", json={"name": "Sales", "kind": "echo"})
    flow["nodes"]["sales"]["agent_id"] = r.json()["id"]
    r = api.post("/api/v1/flows", json={"name": "Support menu", "definition": flow})
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    require(shutil.which("espeak-ng") is not None, "espeak-ng is not installed (voice flows)")
    from emulators import MetaEmulator, TwilioEmulator
    from control.secrets import generate_key

    workdir = tmp_path_factory.mktemp("flows")
    reserved = reserve_port()
    gateway_port, agent_port = reserved.getsockname()[1], free_port()
    with contextlib.ExitStack() as es:
        emus = {"twilio": es.enter_context(TwilioEmulator()),
                "meta": es.enter_context(MetaEmulator())}
        env = {"TWILIO_API_BASE": emus["twilio"].url, "META_GRAPH_BASE": emus["meta"].base,
               "CONVERSE_SECRET_KEY": generate_key(),
               "GATEWAY_PUBLIC_URL": f"ws://127.0.0.1:{gateway_port}",
               "CONVERSE_MESSAGING_POLL_S": "0.2", "CONVERSE_LOG_LEVEL": "INFO"}
        control = start_control_server(workdir, f"sqlite:///{workdir / 'converse.db'}", env, emus)
        es.callback(control.stop)
        st = Stack(control, gateway_port, agent_port)
        with control.client() as api:
            flow_id = _support_menu(api, agent_port)
            st.ids["flow"] = flow_id
            r = api.post("/api/v1/channels", json={"type": "voice", "provider": "twilio",
                                                   "credentials": emus["twilio"].creds,
                                                   "phone_number": "+15005550006",
                                                   "flow_id": flow_id})
            assert r.status_code == 201, r.text
            st.ids["voice"] = r.json()["id"]
            r = api.post(f"/api/v1/channels/{st.ids['voice']}/activate")
            assert r.status_code == 200, r.text
        es.callback(_stop, start_gateway_cli(workdir, control.env, reserved))
        st.gateway_log = workdir / "gateway.log"
        yield st


def _stop(proc):
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


def _rms(pcm: bytes) -> float:
    x = np.frombuffer(bytes(pcm), dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(x * x))) if len(x) else 0.0


async def test_dtmf_menu_on_a_simulated_twilio_call(stack):
    """The caller hears the greeting, presses 2 during the menu (a barge-in), keys the account
    number and #; the support agent gets the call with the collected variables."""
    agent = RecordingAgent()
    control = stack.control
    silence = bytes(2 * 8000 * 9)                       # the caller says nothing for 9 s
    digits = [("2", 2.5)] + [(d, 4.0 + 0.25 * i) for i, d in enumerate("12345#")]
    spec = CallSpec(provider="twilio", channel_id=stack.ids["voice"], pcm8k=silence,
                    control_url=control.base_url, public_url=control.settings.public_url,
                    auth_token=control.twilio.auth_token, dtmf=digits, tail_s=1.0,
                    from_number="+14155550123")
    async with trio.open_nursery() as nursery:
        await nursery.start(agent.serve, stack.agent_port)
        result = await simulate_call(spec)
        with trio.move_on_after(5):
            await agent.started.wait()
        nursery.cancel_scope.cancel()
    assert result.refused is None, result.answer
    log = stack.gateway_log.read_text()
    assert agent.starts, log[-3000:]
    start = agent.starts[0]
    assert start.channel_type == "voice" and start.channel_id == stack.ids["voice"]
    assert start.variables["account"] == "12345"
    assert start.variables["call_id"] == result.call_id and start.variables["provider"] == "twilio"
    assert start.variables["caller"].endswith("4155550123")
    assert start.variables["flow_variables"]["last_input"] == "12345"
    # the greeting was spoken (espeak-ng through the native resampler and the µ-law encoder)
    heard = bytes(result.heard)
    assert _rms(heard[:2 * 8000 * 2]) > 300
    # "2" arrived while the menu prompt played: it was cleared, and the flow's marks came back
    assert result.clears and result.clears[0] >= 2.0
    assert any(name.startswith("flow:") for name, _ in result.marks)


# -- WhatsApp ------------------------------------------------------------------------------------
def _whatsapp_channel(control, flow_id: str) -> str:
    meta = control.meta
    with control.client() as api:
        r = api.post("/api/v1/channels", json={"type": "whatsapp", "provider": "meta",
                                               "credentials": meta.creds, "flow_id": flow_id})
        assert r.status_code == 201, r.text
        channel_id = r.json()["id"]
    r = httpx.get(f"{control.base_url}/api/v1/webhooks/meta/{channel_id}",
                  params=meta.verification_params(challenge="77"))
    assert r.status_code == 200 and r.text == "77"
    return channel_id


def _say(control, channel_id: str, number: str, text: str, replies: int) -> list[str]:
    """Post a signed WhatsApp message; return the ``replies`` texts that answer it."""
    meta = control.meta

    def sent():
        return [t for dest, t in meta.sent_texts() if dest == number]

    before = len(sent())
    payload, _ = meta.inbound_text(text, from_=number)
    body, headers = meta.signed(payload)
    r = httpx.post(f"{control.base_url}/api/v1/webhooks/meta/{channel_id}", content=body,
                   headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    wait_for(lambda: len(sent()) >= before + replies, f"{replies} replies to {text!r}")
    return sent()[before:]


async def test_whatsapp_menu_survives_a_control_plane_restart(stack):
    """The same menu over WhatsApp: "2" is the typed key; the control plane restarts between the
    choice and the account number, and the conversation picks up where it was; the support agent
    then answers with the collected variables in its start."""
    control = stack.control
    agent = RecordingAgent()
    number = "16505550002"

    def conversation():
        channel_id = _whatsapp_channel(control, stack.ids["flow"])
        menu = _say(control, channel_id, number, "hi", 2)
        assert menu == ["Thanks for calling Acme.", "For sales press 1. For support press 2. "
                        "To speak to an operator press 0."]
        assert _say(control, channel_id, number, "2", 1) == [
            "Please enter your account number, then press hash."]
        control.restart()                                  # the flow's position is in the store
        return _say(control, channel_id, number, "12345", 2)

    async with trio.open_nursery() as nursery:
        await nursery.start(agent.serve, stack.agent_port)
        replies = await trio.to_thread.run_sync(conversation)
        nursery.cancel_scope.cancel()
    assert replies == ["support agent here", "agent heard: 12345"]
    start = agent.starts[-1]
    assert start.channel_type == "whatsapp"
    assert start.variables["account"] == "12345"
    assert start.variables["flow_variables"]["account"] == "12345"
    assert start.variables["caller"] == number


async def test_operator_key_transfers_the_twilio_call(stack):
    """0 = operator: the transfer message is spoken, then the live call is updated through
    Twilio's REST API with <Dial> TwiML (the emulator records it) and the stream ends."""
    control = stack.control
    spec = CallSpec(provider="twilio", channel_id=stack.ids["voice"], pcm8k=bytes(2 * 8000 * 9),
                    control_url=control.base_url, public_url=control.settings.public_url,
                    auth_token=control.twilio.auth_token, dtmf=[("0", 2.0)], tail_s=1.0,
                    hangup=False)
    result = await simulate_call(spec)
    assert result.refused is None, result.answer
    updates = [u for u in control.twilio.call_updates if u["sid"] == result.call_id]
    assert len(updates) == 1, stack.gateway_log.read_text()[-3000:]
    assert "<Dial><Number>+14155550100</Number></Dial>" in updates[0]["twiml"]
    assert updates[0]["account_sid"] == control.twilio.account_sid
    assert result.close_code is not None                 # the gateway ended the stream


def test_whatsapp_flow_sms_node_goes_out_through_the_sms_outbox(stack):
    """A flow's sms node on a WhatsApp conversation: the SMS is queued with the replies (same
    transaction) and sent once through the SMS channel's Twilio number."""
    control = stack.control
    tw = control.twilio
    tw.add_number(tw.account_sid, "+15005550010")
    with control.client() as api:
        agent = api.post("/api/v1/agents", json={"name": "e", "kind": "echo"}).json()["id"]
        r = api.post("/api/v1/channels", json={"type": "sms", "provider": "twilio",
                                               "credentials": tw.creds, "agent_id": agent,
                                               "phone_number": "+15005550010"})
        assert r.status_code == 201, r.text
        sms_channel = r.json()["id"]
        assert api.post(f"/api/v1/channels/{sms_channel}/activate").status_code == 200
        flow = {"start": "e", "nodes": {
            "e": {"type": "entry", "next": "txt"},
            "txt": {"type": "sms", "channel_id": sms_channel, "to": "+14155550999",
                    "text": "Your code is 4242", "next": "bye"},
            "bye": {"type": "end", "message": "We sent you a text."}}}
        r = api.post("/api/v1/flows", json={"name": "sms", "definition": flow})
        assert r.status_code == 201, r.text
        flow_id = r.json()["id"]
    channel_id = _whatsapp_channel(control, flow_id)
    assert _say(control, channel_id, "16505550003", "hi", 1) == ["We sent you a text."]

    def texts():
        return [m for m in tw.messages if m["to"] == "+14155550999"]

    wait_for(texts, "the flow's SMS")
    time.sleep(0.5)                                    # a few more outbox polls: still one
    sent = texts()
    assert len(sent) == 1 and sent[0]["body"] == "Your code is 4242"
    assert sent[0]["from"] == "+15005550010"
