"""Text mode for every agent connector: one user message in, the agent's replies out.

Messaging channels (WhatsApp, SMS) have no live session: each inbound message is one turn. A turn
runs the ordinary connector (``echo``, ``http``, ``websocket``) with ``start`` (session id = the
conversation id, so the agent can keep its own context; ``variables.history`` carries the recent
exchange), then ``{"type":"text"}``, and collects assistant ``transcript`` events. The caller side
ends the turn once the agent has answered (or failed) -- for a websocket agent, once it has then
been quiet for ``QUIET_S`` (it may greet first) -- and the whole turn runs under ``deadline``.

    replies = await reply_text(agent, "cv_1", "hello", channel_id="ch_1", channel_type="sms",
                               caller="+14155550123", history=[("user", "hi"), ...])
"""
from __future__ import annotations

import trio

from gateway.agents import make_agent
from gateway.directory import AgentInfo
from gateway.limits import Limits
from gateway.protocols.canonical import Caller, End, Error, Start, Text, Transcript

MAX_REPLIES = 10           # a chatty agent cannot flood a phone with messages from one turn
QUIET_S = 0.5              # websocket agents: the turn is over after this long without output


class AgentTurnError(Exception):
    """The agent gave no reply: ``code`` is the agent's error code (agent_unavailable, ...) or
    ``no_reply`` / ``timeout``."""

    def __init__(self, code: str, message: str = ""):
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message


async def reply_text(agent: AgentInfo, conversation_id: str, text: str, *, channel_id: str,
                     channel_type: str, caller: str | None = None,
                     history: list[tuple[str, str]] = (), limits: Limits | None = None,
                     deadline: float = 30.0, variables: dict | None = None) -> list[str]:
    """The agent's replies to ``text`` (at least one), or :class:`AgentTurnError`.
    ``variables`` (e.g. what a flow collected before handing over) go into ``start.variables``."""
    limits = limits or Limits()
    connector = make_agent(agent, limits)
    # The http connector JSON-encodes start.caller with the stdlib (a Struct is not encodable
    # there), so it gets the number in variables only.
    with_caller = caller and agent.kind != "http"
    start = Start(session_id=conversation_id, channel_id=channel_id, channel_type=channel_type,
                  caller=Caller(number=caller) if with_caller else None,
                  variables={**(variables or {}), "caller": caller or "",
                             "history": [{"role": r, "text": t} for r, t in history]})
    replies: list[str] = []
    errors: list[Error] = []
    answered = trio.Event()
    from_agent_send, from_agent_recv = trio.open_memory_channel(limits.agent_queue)

    async def inbox():
        # The turn's input: the text, then (once the agent answered) the end of the "session".
        yield Text(text=text)
        await answered.wait()
        if agent.kind == "websocket":
            # A streaming agent may say several things (a greeting on start, then the answer):
            # the turn ends when it has been quiet for QUIET_S.
            seen = -1
            while seen != len(replies) + len(errors):
                seen = len(replies) + len(errors)
                await trio.sleep(QUIET_S)
        yield End(reason="turn complete")

    async def run_connector():
        async with from_agent_send:
            await connector.run(start, inbox(), from_agent_send)

    async def collect():
        async for event in from_agent_recv:
            if isinstance(event, Transcript) and event.role == "assistant" and event.final:
                if event.text.strip() and len(replies) < MAX_REPLIES:
                    replies.append(event.text)
                answered.set()
            elif isinstance(event, Error):
                errors.append(event)
                answered.set()
            elif isinstance(event, End):
                answered.set()

    try:
        with trio.move_on_after(deadline) as scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(collect)
                nursery.start_soon(run_connector)
    except Exception as exc:          # a connector bug: this turn fails, the worker carries on
        raise AgentTurnError("agent_crashed", _first_type(exc)) from exc
    if replies:
        return replies
    if errors:
        raise AgentTurnError(errors[0].code, errors[0].message)
    if scope.cancelled_caught:
        raise AgentTurnError("timeout", f"no reply within {deadline:g} s")
    raise AgentTurnError("no_reply", "the agent ended the turn without a reply")


def _first_type(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return type(exc).__name__
