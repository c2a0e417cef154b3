"""The HTTP text agent: each user text is POSTed to ``config["url"]``; the reply becomes a transcript.

Request body: ``{"conversation_id", "text", "channel_id", "caller"}`` (JSON). Reply: JSON with a
``text`` (or ``reply``) string, or ``text/plain``. Each request runs under the agent's
``config["timeout_s"]`` (0 < t <= 120, as the control plane validates it), else
``limits.agent_request_timeout_s``; a failure is an ``error`` event and the conversation goes on.
Audio is not understood: the first frame gets one ``error`` event saying so, the rest are ignored.
"""
from __future__ import annotations

import logging

import httpx
import msgspec
import trio

from gateway.agents._remote import RemoteAgent
from gateway.protocols.canonical import End, Error, Start, Text, Transcript

log = logging.getLogger("converse.agents.http")


class HttpAgent(RemoteAgent):
    def __init__(self, config: dict, limits):
        super().__init__(config, limits)
        t = config.get("timeout_s")
        valid = isinstance(t, (int, float)) and not isinstance(t, bool) and 0 < t <= 120
        self.timeout_s = float(t) if valid else limits.agent_request_timeout_s

    async def run(self, start: Start, inbox, outbox: trio.MemorySendChannel) -> None:
        if not isinstance(self.url, str) or not self.url.startswith(("http://", "https://")):
            await outbox.send(Error(code="agent_misconfigured", message="the agent has no valid URL"))
            await outbox.send(End(reason="agent_misconfigured"))
            return
        told_audio = False
        timeout = httpx.Timeout(self.timeout_s, connect=self.limits.agent_connect_timeout_s)
        async with httpx.AsyncClient(timeout=timeout, headers=self.headers) as client:
            async for item in inbox:
                if type(item) is bytes:
                    if not told_audio:
                        told_audio = True
                        await outbox.send(Error(code="text_only",
                                                message="this agent understands text only"))
                elif isinstance(item, Text):
                    await outbox.send(await self._ask(client, start, item.text))
                elif isinstance(item, End):
                    break

    async def _ask(self, client: httpx.AsyncClient, start: Start, text: str):
        body = {"conversation_id": start.session_id, "text": text,
                "channel_id": start.channel_id, "caller": msgspec.to_builtins(start.caller)}
        try:
            with trio.fail_after(self.timeout_s):
                response = await client.post(self.url, json=body)
        except (httpx.HTTPError, trio.TooSlowError) as exc:
            log.warning("http agent %s failed: %s", self.url, type(exc).__name__)
            return Error(code="agent_unavailable", message="the agent did not answer")
        if response.status_code >= 400:
            return Error(code="agent_error", message=f"the agent answered HTTP {response.status_code}")
        reply = _reply_text(response)
        if reply is None:
            return Error(code="agent_error", message="the agent's reply has no text")
        return Transcript(role="assistant", text=reply[:4096])


def _reply_text(response: httpx.Response) -> str | None:
    if response.headers.get("content-type", "").startswith("application/json"):
        try:
            data = msgspec.json.decode(response.content)
        except (msgspec.DecodeError, RecursionError):     # hostile nesting ends msgspec in Python's
            return None                                   # recursion limit, not a DecodeError
        if isinstance(data, dict):
            for key in ("text", "reply"):
                if isinstance(data.get(key), str):
                    return data[key]
        return None
    return response.text[:10_000]
