"""The external WebSocket agent: relays the canonical protocol to ``config["url"]`` and back.

Config: ``{"url": "ws(s)://…", "headers": {...}}``. On connect it sends ``start`` (session, channel,
caller metadata, audio rates) and then relays both ways: caller PCM16 16 kHz frames as binary, events
as JSON; the agent's binary frames (PCM16 24 kHz) and JSON events come back. A connection failure
becomes an ``error`` event for the caller and a clean end, within the connect deadline: never a hang.
A malformed message from the agent is logged (type and size only) and skipped.
"""
from __future__ import annotations

import functools
import logging

import trio

from gateway import transport
from gateway.agents._remote import RemoteAgent
from gateway.protocols import canonical
from gateway.protocols.canonical import End, Error, Start

log = logging.getLogger("converse.agents.websocket")


class WebSocketAgent(RemoteAgent):
    async def run(self, start: Start, inbox, outbox: trio.MemorySendChannel) -> None:
        if not isinstance(self.url, str) or not self.url.startswith(("ws://", "wss://")):
            await self._fail(outbox, "agent_misconfigured", "the agent has no valid WebSocket URL")
            return
        try:
            ws = await transport.connect(
                self.url, self.headers, timeout=self.limits.agent_connect_timeout_s,
                limits=self.limits.replace(write_timeout_s=self.limits.agent_write_timeout_s))
        except transport.HandshakeError as exc:
            log.warning("agent %s unreachable: %s", self.url.split("?")[0], exc)
            await self._fail(outbox, "agent_unavailable", "the agent could not be reached")
            return
        self._lost: transport.ConnectionClosed | None = None
        try:
            await ws.send_text(canonical.encode(start))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._to_agent, ws, inbox, nursery.cancel_scope)
                nursery.start_soon(self._from_agent, ws, outbox, nursery.cancel_scope)
                nursery.start_soon(self._keepalive, ws)
        except transport.ConnectionClosed as closed:
            self._lost = closed
        finally:
            with trio.CancelScope(shield=True):
                await ws.aclose(1000, "session ended")
        if self._lost is not None and self._lost.code not in (1000, 1001):
            log.warning("agent %s link lost: %s", self.url.split("?")[0], self._lost)
            await self._fail(outbox, "agent_disconnected",
                             f"the agent connection was lost ({self._lost.code})")

    async def _to_agent(self, ws, inbox, scope: trio.CancelScope) -> None:
        reason = "caller hung up"
        direct = hasattr(inbox, "direct")        # the session's own inbox, not a flow's wrapper
        try:
            if direct:
                inbox.direct = functools.partial(_direct, ws)
            async for item in inbox:
                if type(item) is bytes:
                    await ws.send(item)
                elif item is _FLUSH:
                    await ws.flush()
                else:
                    await ws.send_text(canonical.encode(item))
                    if isinstance(item, End):
                        reason = ""
                        break
            if direct:
                inbox.direct = None
            if reason:
                await ws.send_text(canonical.encode(End(reason=reason)))
            await ws.close(1000, "session ended")
        except transport.ConnectionClosed as closed:
            self._lost = self._lost or closed
            scope.cancel()
            return
        finally:
            if direct:
                inbox.direct = None
        with trio.move_on_after(self.limits.close_timeout_s):
            await trio.sleep_forever()         # let _from_agent see the agent's close
        scope.cancel()

    async def _from_agent(self, ws, outbox, scope: trio.CancelScope) -> None:
        try:
            while True:
                message = await ws.receive()
                if type(message) is bytes:
                    if len(message) & 1:
                        log.warning("agent sent an odd-length audio frame (%d bytes)", len(message))
                        continue
                    await outbox.send(message)
                    continue
                try:
                    event = canonical.decode(message, sender="agent")
                except canonical.ProtocolError as exc:
                    log.warning("agent sent a bad message (%s, %d chars)", exc.code, len(message))
                    continue
                await outbox.send(event)
                if isinstance(event, End):
                    break
        except transport.ConnectionClosed as closed:
            self._lost = self._lost or closed
        scope.cancel()

    async def _keepalive(self, ws) -> None:
        # An agent that stops reading for a while is not dead: allow it the agent write timeout
        # per ping interval (half-open detection within two of those) rather than the caller's.
        try:
            await ws.keepalive(max(self.limits.ping_interval_s, self.limits.agent_write_timeout_s))
        except transport.ConnectionClosed:
            pass

    @staticmethod
    async def _fail(outbox, code: str, message: str) -> None:
        await outbox.send(Error(code=code, message=message))
        await outbox.send(End(reason=code))


_FLUSH = object()      # queued after a frame the socket took only part of: finish writing it


def _direct(ws, frame: bytes):
    """The inbox's fast path: the caller's task writes the frame to the agent's socket itself."""
    result = ws.try_send_binary(frame)
    if result == transport.SENT:
        return True
    return _FLUSH if result == transport.PENDING else False
