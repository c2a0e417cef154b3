"""The flow runner inside real widget sessions (GatewayServer on 127.0.0.1, our WebSocket client),
on Trio's virtual clock: hand-off with the collected variables, barge-in, timeouts, a missing
agent, TTS failing, and api_call against a real local HTTP server (slow / 500 / good JSON)."""
from __future__ import annotations

import json

import pytest
import trio

from fixtures_gateway import ORIGIN, open_session, start_gateway
from flow_helpers import RecordingAgent, ToneTts, example_flow
from gateway import transport
from gateway.directory import AgentInfo, ChannelInfo, FlowInfo, StaticDirectory
from gateway.flows import runner
from gateway.flows.runner import agent_start
from gateway.protocols import canonical
from gateway.protocols.canonical import Caller, Dtmf, Start, Text


def directory(flow: dict, agent_url: str | None, flow_id: str = "menu") -> StaticDirectory:
    agents = [AgentInfo(id="sales-agent", name="Sales", kind="echo")]
    if agent_url:
        agents.append(AgentInfo(id="support-agent", name="Support", kind="websocket",
                                config={"url": agent_url}))
    channels = [ChannelInfo(id="web-flow", type="web", status="active", flow_id=flow_id,
                            allowed_origins=(ORIGIN,))]
    return StaticDirectory(channels=channels, agents=agents,
                           flows=[FlowInfo(id=flow_id, name=flow.get("name", "flow"),
                                           definition=flow)])


async def gateway_with_flow(nursery, flow: dict, agent: RecordingAgent | None, tts=None):
    server = await start_gateway(nursery, directory(flow, agent.url if agent else None))
    runner.install(server, tts=tts if tts is not None else ToneTts())
    return server


class Widget:
    """The browser side: collects audio bytes, transcripts, clears and the end."""

    def __init__(self, ws):
        self.ws = ws
        self.audio = 0
        self.events: list = []

    async def next(self, kind: str):
        while True:
            message = await self.ws.receive()
            if type(message) is bytes:
                self.audio += len(message)
                continue
            event = canonical.decode(message)
            self.events.append(event)
            if type(event).__name__.lower() == kind:
                return event

    async def transcript(self, contains: str):
        while True:
            event = await self.next("transcript")
            if contains in event.text:
                return event

    async def send(self, event) -> None:
        await self.ws.send_text(canonical.encode(event))


async def open_widget(server, flow_id="menu") -> Widget:
    return Widget(await open_session(server, f"/ws/flow/{flow_id}"))


async def test_typed_2_hands_off_to_support_with_collected_variables(nursery, autojump_clock):
    agent = RecordingAgent()
    await nursery.start(agent.serve)
    server = await gateway_with_flow(nursery, example_flow("support_menu"), agent)
    w = await open_widget(server)
    await w.transcript("Thanks for calling Acme")
    await w.transcript("For support press 2")
    await w.send(Text(text="2"))
    await w.transcript("account number")
    await w.send(Text(text="12345"))
    assert (await w.transcript("support agent here")).role == "assistant"
    start = agent.starts[0]
    assert start.channel_id == "web-flow" and start.channel_type == "web"
    assert start.variables["account"] == "12345"
    assert start.variables["agent_id"] == "support-agent"
    assert start.variables["flow_variables"]["account"] == "12345"
    assert start.variables["flow_variables"]["last_input"] == "12345"
    # the session goes on with the agent: text reaches it, its answer reaches the widget
    await w.send(Text(text="my printer is on fire"))
    await w.transcript("agent heard: my printer is on fire")
    assert w.audio > 0                                       # the prompts were audio too
    await w.ws.aclose()
    server.shutdown()


async def test_dtmf_during_prompt_barges_in(nursery, autojump_clock):
    agent = RecordingAgent()
    await nursery.start(agent.serve)
    server = await gateway_with_flow(nursery, example_flow("support_menu"), agent,
                                     tts=ToneTts(seconds=20))
    w = await open_widget(server)
    await w.transcript("Thanks for calling Acme")
    await w.send(Dtmf(digit="2"))                            # 20 s greeting + 20 s menu queued
    await w.next("clear")
    await w.transcript("account number")
    await w.send(Text(text="98765"))
    await w.transcript("support agent here")
    assert agent.starts[0].variables["account"] == "98765"
    await w.ws.aclose()
    server.shutdown()


async def test_no_input_times_out_to_operator_which_a_web_channel_cannot_transfer(
        nursery, autojump_clock):
    server = await gateway_with_flow(nursery, example_flow("support_menu"), None)
    w = await open_widget(server)
    t0 = trio.current_time()
    end = await w.next("end")
    assert end.reason == "transfer"                          # menu timeout -> operator node
    said = [e.text for e in w.events if type(e).__name__ == "Transcript"]
    assert said[-1] == "Connecting you to an operator."
    # three tries of a 6 s menu (retries 2), each after its prompt was heard
    assert trio.current_time() - t0 >= 3 * 6
    server.shutdown()


async def test_missing_agent_ends_politely(nursery, autojump_clock):
    server = await gateway_with_flow(nursery, example_flow("support_menu"), None)
    w = await open_widget(server)
    await w.transcript("For support press 2")
    await w.send(Text(text="1"))                             # sales-agent is the echo agent
    await w.send(Text(text="hi"))
    await w.transcript("You said: hi")
    server.shutdown()
    server = await gateway_with_flow(nursery, example_flow("support_menu"), None)
    w = await open_widget(server)
    await w.send(Text(text="2"))
    await w.send(Text(text="12345"))                         # support-agent is not configured
    end = await w.next("end")
    assert end.reason == "agent_unavailable"
    server.shutdown()


async def test_tts_failure_still_shows_the_prompts(nursery, autojump_clock):
    tts = ToneTts(fail=True)
    server = await gateway_with_flow(nursery, example_flow("support_menu"), None, tts=tts)
    w = await open_widget(server)
    await w.transcript("For support press 2")
    await w.send(Text(text="9"))                             # invalid: retry prompt
    await w.transcript("For support press 2")
    assert w.audio == 0 and tts.texts
    server.shutdown()


async def test_invalid_flow_is_refused_before_the_upgrade(nursery, autojump_clock):
    server = await gateway_with_flow(nursery, {"start": "nope", "nodes": {}}, None)
    with pytest.raises(transport.HandshakeError) as err:
        await open_session(server, "/ws/flow/menu")
    assert err.value.status == 503
    server.shutdown()


def test_agent_start_keeps_gateway_keys():
    start = Start(session_id="s1", channel_id="c1", channel_type="voice",
                  caller=Caller(number="+15550001"),
                  variables={"call_id": "CA1", "provider": "twilio", "flow_id": "f"})
    out = agent_start(start, "support", {"call_id": "evil", "account": "42", "caller": "+1"})
    assert out.variables["call_id"] == "CA1" and out.variables["account"] == "42"
    assert out.variables["agent_id"] == "support"
    assert out.variables["flow_variables"] == {"call_id": "evil", "account": "42", "caller": "+1"}
    assert out.session_id == "s1" and out.caller.number == "+15550001"


# -- api_call through the runner against a real HTTP server on 127.0.0.1 ------------------------
async def crm_server(behaviour: dict, task_status=trio.TASK_STATUS_IGNORED):
    """A tiny HTTP/1.1 server: ``behaviour["mode"]`` is "slow" (answers after 60 s), "500" or
    "json". Records the request lines it saw."""
    import h11
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])

    async def handle(stream):
        conn = h11.Connection(h11.SERVER)
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
                continue
            if isinstance(event, h11.Request):
                behaviour.setdefault("seen", []).append(event.target.decode())
            if isinstance(event, h11.EndOfMessage):
                break
        mode = behaviour["mode"]
        if mode == "slow":
            await trio.sleep(60)
        status, body = (500, b"oops") if mode == "500" else (200, json.dumps(
            {"customers": [{"name": "Ada", "tier": "gold", "open_tickets": 3}]}).encode())
        headers = [("content-type", "application/json"), ("content-length", str(len(body)))]
        await stream.send_all(conn.send(h11.Response(status_code=status, headers=headers)))
        await stream.send_all(conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
        await stream.aclose()

    await trio.serve_listeners(handle, listeners)


@pytest.mark.parametrize("mode,said", [
    ("json", "Hello Ada, you have 3 open tickets."),
    ("500", "Our records are unavailable right now."),
    ("slow", "Our records are unavailable right now."),
])
async def test_api_call_against_a_local_server(nursery, autojump_clock, mode, said):
    behaviour = {"mode": mode}
    port = await nursery.start(crm_server, behaviour)
    flow = example_flow("crm_lookup")
    flow["nodes"]["lookup"]["url"] = (f"http://127.0.0.1:{port}/api/customers"
                                      "?phone={{caller}}")
    agent = RecordingAgent()
    await nursery.start(agent.serve)
    server = await gateway_with_flow(nursery, flow, agent)
    t0 = trio.current_time()
    w = await open_widget(server)
    await w.transcript(said)
    if mode == "slow":
        assert trio.current_time() - t0 >= 3                 # the node's timeout_s, not 60 s
        assert trio.current_time() - t0 < 60
    await w.transcript("support agent here")
    variables = agent.starts[0].variables
    assert str(variables["api_status"]) == {"json": "200", "500": "500", "slow": ""}[mode]
    if mode == "slow":
        assert variables["api_error"] == "timeout"
    if mode == "json":
        assert variables["customer_name"] == "Ada" and variables["open_tickets"] == 3
    assert behaviour["seen"] == ["/api/customers?phone="]
    server.shutdown()


# -- the runner alone, with a scripted session around it ------------------------------------------
async def run_alone(flow_def: dict, services, *, channel_type="voice", feed=()):
    """Run a FlowRunner with the session played by the test: marks come back at once, ``feed``
    is put into the inbox up front. Returns everything the runner sent."""
    from gateway.flows import validate
    flow = validate(flow_def)
    start = Start(session_id="s", channel_id="ch", channel_type=channel_type,
                  caller=Caller(number="+15550001111"),
                  variables={"provider": "twilio", "call_id": "CA1"})
    in_send, in_recv = trio.open_memory_channel(100)
    out_send, out_recv = trio.open_memory_channel(100)
    sent = []
    for item in feed:
        in_send.send_nowait(item)

    async def session():
        async for item in out_recv:
            sent.append(item)
            if isinstance(item, canonical.Mark):
                await in_send.send(item)              # "played"
            if isinstance(item, canonical.End):
                await in_send.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(session)
        async with out_send:
            await runner.FlowRunner(flow, services).run(start, in_recv, out_send)
    return sent


async def test_transfer_failure_apologises_and_sms_goes_to_the_outbox(autojump_clock):
    transfers, smses = [], []

    async def transfer(start, number):
        transfers.append((start.variables["call_id"], number))
        raise RuntimeError("provider said no")

    async def send_sms(channel_id, to, text):
        smses.append((channel_id, to, text))

    flow = {"start": "e", "nodes": {
        "e": {"type": "entry", "next": "txt"},
        "txt": {"type": "sms", "channel_id": "sms1", "text": "Your ticket is 42", "next": "op"},
        "op": {"type": "transfer", "number": "+14155550100", "message": "Connecting you."}}}
    services = runner.FlowServices(agent=None, tts=ToneTts(), transfer=transfer,
                                   send_sms=send_sms)
    sent = await run_alone(flow, services)
    assert smses == [("sms1", "+15550001111", "Your ticket is 42")]
    assert transfers == [("CA1", "+14155550100")]
    said = [e.text for e in sent if isinstance(e, canonical.Transcript)]
    assert said == ["Connecting you.", "Sorry, we could not transfer your call. Goodbye."]
    assert isinstance(sent[-1], canonical.End) and sent[-1].reason == "transfer_failed"
    # the apology was queued after the transfer message had been heard (its mark came back)
    marks = [i for i, e in enumerate(sent) if isinstance(e, canonical.Mark)]
    assert len(marks) == 2 and sum(1 for e in sent if type(e) is bytes) > 0


async def test_transfer_success_ends_with_transferred(autojump_clock):
    async def transfer(start, number):
        pass

    flow = {"start": "e", "nodes": {"e": {"type": "entry", "next": "op"},
                                    "op": {"type": "transfer", "number": "+14155550100"}}}
    sent = await run_alone(flow, runner.FlowServices(agent=None, tts=ToneTts(),
                                                     transfer=transfer))
    assert sent[-1] == canonical.End(reason="transferred")


async def test_caller_gone_mid_flow_ends_the_runner_quietly(autojump_clock):
    """The inbox closes while the menu waits (the caller hung up): run() returns, no error."""
    from gateway.flows import validate
    flow = runner.FlowRunner(validate(example_flow("support_menu")),
                             runner.FlowServices(agent=None, tts=ToneTts()))
    start = Start(session_id="s", channel_id="ch", channel_type="web")
    in_send, in_recv = trio.open_memory_channel(10)
    out_send, out_recv = trio.open_memory_channel(100)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(flow.run, start, in_recv, out_send)
        await out_recv.receive()                     # the greeting's transcript: it runs
        await in_send.aclose()
    assert flow.outcome == "gone"
