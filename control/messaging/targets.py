"""One conversation turn against the channel's target: an agent (text mode) or a flow.

:func:`run_turn` is the seam the worker calls: it takes the inbound text and the conversation's
persisted ``target_state`` and returns the replies plus the new state, which the worker commits in
the same transaction as the inbound message's ``processed`` mark. Nothing here writes to the store.

* Agent: :func:`gateway.agents.text.reply_text` (echo, http, websocket).
* Flow: the pure engine (:mod:`gateway.flows`) restored from ``target_state["flow"]`` (its
  ``snapshot()``), fed ``TextReceived``; ``SendText`` become replies, ``End`` its message,
  ``HandOff`` switches the conversation to the agent (``target_state["agent_id"]``), which then
  answers this and later messages. ``CallApi``/``Classify`` are performed inline (the turn waits)
  with the host helpers; timers are not used on text channels. A finished flow starts over on
  the next message. ``SendSms`` goes back in :attr:`TurnResult.sms`: the worker queues it in the
  outbox in the same transaction as the replies (exactly once).
"""
from __future__ import annotations

import datetime as dt
import logging

import msgspec

from gateway.agents.text import AgentTurnError, reply_text
from gateway.directory import AgentInfo

log = logging.getLogger("converse.messaging")

NOT_TEXT_REPLY = "Sorry, I can only read text messages. Please type your message."
MAX_FLOW_STEPS = 20          # engine round trips per turn (API calls, classifier answers)


class TurnResult(msgspec.Struct, frozen=True):
    replies: list[str]
    state: dict
    # a flow's sms nodes: (SMS channel id, to, text), committed to the outbox with the replies
    sms: list[tuple[str, str, str]] = []


class Turn(msgspec.Struct, frozen=True, kw_only=True):
    conversation_id: str
    channel_id: str
    channel_type: str
    provider: str | None
    remote: str
    text: str
    history: list[tuple[str, str]] = []
    state: dict = {}


async def run_turn(store_read, channel, turn: Turn, *, deadline: float) -> TurnResult:
    """``store_read(fn, *args)`` reads agents/flows (``Store.read``). Raises AgentTurnError."""
    from control.store import repo

    agent_id = turn.state.get("agent_id") or (None if channel.flow_id else channel.agent_id)
    if agent_id:
        return await _agent_turn(store_read, repo, agent_id, turn, deadline)
    if channel.flow_id:
        return await _flow_turn(store_read, repo, channel.flow_id, turn, deadline)
    raise AgentTurnError("no_target", "the channel has no agent or flow")


async def _agent_turn(store_read, repo, agent_id: str, turn: Turn, deadline: float) -> TurnResult:
    row = await store_read(repo.get_agent, agent_id)
    if row is None:
        raise AgentTurnError("no_target", f"agent {agent_id} does not exist")
    info = _agent_info(store_read, row)
    replies = await reply_text(info, turn.conversation_id, turn.text, channel_id=turn.channel_id,
                               channel_type=turn.channel_type, caller=turn.remote,
                               history=turn.history, deadline=deadline,
                               variables=turn.state.get("variables"))
    return TurnResult(replies, turn.state)


def _agent_info(store_read, row) -> AgentInfo:
    """The agent with its headers decrypted (they are encrypted at rest). ``store_read`` is
    ``Store.read``, whose store holds the key."""
    from control.store.directory import agent_info

    return agent_info(row, store_read.__self__.box)


async def _flow_turn(store_read, repo, flow_id: str, turn: Turn, deadline: float) -> TurnResult:
    import trio

    from gateway import flows

    row = await store_read(repo.get_flow, flow_id)
    if row is None:
        raise AgentTurnError("no_target", f"flow {flow_id} does not exist")
    try:
        flow = flows.validate(dict(row.definition, name=row.name))
    except flows.FlowValidationError as exc:
        raise AgentTurnError("flow_invalid", str(exc)[:200]) from None
    context = flows.FlowContext(channel_id=turn.channel_id, channel_type=turn.channel_type,
                                caller=turn.remote, provider=turn.provider)
    now = dt.datetime.now(dt.timezone.utc)
    snapshot = turn.state.get("flow")
    engine = None
    if snapshot:
        try:
            engine = flows.FlowEngine.restore(flow, context, snapshot)
        except flows.FlowSnapshotError as exc:
            log.info("conversation %s: flow restarted (%s)", turn.conversation_id, exc)
    replies: list[str] = []
    sms: list[tuple[str, str, str]] = []
    with trio.move_on_after(deadline):
        if engine is None or engine.done:
            engine = flows.FlowEngine(flow, flows.FlowContext(
                channel_id=turn.channel_id, channel_type=turn.channel_type, caller=turn.remote,
                provider=turn.provider, variables={"last_input": turn.text}))
            actions = engine.start(now)
        else:
            actions = engine.feed(flows.TextReceived(text=turn.text, now=now))
        handoff = await _perform(engine, actions, replies, flows, sms)
        state = dict(turn.state, flow=engine.snapshot())
        if handoff is not None:
            # the agent's start carries what the flow collected, on this and later turns
            state = {"agent_id": handoff.agent_id, "flow": engine.snapshot(),
                     "variables": {**handoff.variables, "flow_variables": handoff.variables}}
            agent_turn = msgspec.structs.replace(turn, state=state)
            result = await _agent_turn(store_read, repo, handoff.agent_id, agent_turn, deadline)
            return TurnResult(replies + result.replies, state, sms)
        return TurnResult(replies, state, sms)
    raise AgentTurnError("timeout", f"the flow did not finish its turn within {deadline:g} s")


async def _perform(engine, actions, replies: list[str], flows, sms: list):
    """Perform the engine's actions in order until it waits for the next message."""
    http = None
    try:
        for _ in range(MAX_FLOW_STEPS):
            follow_up = []
            for action in actions:
                if isinstance(action, flows.SendText):
                    replies.append(action.text)
                elif isinstance(action, flows.End):
                    if action.message:
                        replies.append(action.message)
                elif isinstance(action, flows.HandOff):
                    return action
                elif isinstance(action, (flows.CallApi, flows.Classify)):
                    from gateway.flows import host
                    http = http or host.client()
                    result = (await host.call_api(http, action) if isinstance(action, flows.CallApi)
                              else await host.classify(http, action))
                    follow_up.append(result)
                elif isinstance(action, flows.SendSms):
                    sms.append((action.channel_id, action.to, action.text))
            if not follow_up:
                return None
            actions = [a for event in follow_up for a in engine.feed(event)]
        return None
    finally:
        if http is not None:
            await http.aclose()
