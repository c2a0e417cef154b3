"""The gateway server: admission, routing, authentication before the upgrade, graceful shutdown.

Every upgrade request goes through, in order: per-IP handshake rate (429), route lookup (404),
shutdown in progress / session limit (503), the route's own authentication (403) — all answered with
an HTTP status and a plain-text reason BEFORE the upgrade — then the route runs the session.

Routes are registered by path prefix: ``/ws/agent/`` and ``/ws/flow/`` (the web widget) are built in;
the phone media streams add ``server.add_route("/media/", handler)`` where ``handler(server, handshake,
rest_of_path)`` authenticates, calls ``await handshake.accept()`` and runs a ``Session`` with
``await server.run_session(session)``. Plain HTTP: ``GET /metrics`` (Prometheus) and ``GET /healthz``.
"""
from __future__ import annotations

import logging
import secrets
from typing import Awaitable, Callable

import trio

from gateway import tokens, transport
from gateway.agents import UnknownAgentKind, make_agent
from gateway.directory import ChannelInfo, Directory
from gateway.protocols.canonical import Start
from gateway.legs.widget import WidgetLeg
from gateway.limits import HandshakeRateLimiter, Limits
from gateway.metrics import Registry, SessionStats
from gateway.session import Session
from gateway.transport import Handshake

log = logging.getLogger("converse.gateway")

RouteHandler = Callable[["GatewayServer", Handshake, str], Awaitable[None]]


class Refused(Exception):
    """Refuse an upgrade: ``status`` and a reason for the HTTP body."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class GatewayServer:
    def __init__(self, directory: Directory, token_secret: bytes, limits: Limits | None = None,
                 *, flow_agent: Callable | None = None):
        self.directory = directory
        self.token_secret = token_secret
        self.limits = limits or Limits()
        self.metrics = Registry()
        self.sessions: set[Session] = set()
        self.routes: dict[str, RouteHandler] = {"/ws/agent/": _widget_route("agent"),
                                                "/ws/flow/": _widget_route("flow")}
        # How a flow target gets its agent until the flow engine exists: a callable
        # (FlowInfo) -> AgentInfo | None. None means flows are refused with a clear reason.
        self.flow_agent = flow_agent
        # async (flow_id) -> (AgentInfo, connector): runs flows (gateway.flows.runner.install).
        self.flow_runner: Callable | None = None
        self._rate = HandshakeRateLimiter(self.limits.handshake_rate_per_s,
                                          self.limits.handshake_burst)
        self._stopping = False
        self._stop = trio.Event()
        self._admitted = 0           # connections past admission: authenticating or in a session
        self.listeners: list[trio.SocketListener] = []
        self.port: int | None = None         # the bound port, once serving

    def add_route(self, prefix: str, handler: RouteHandler) -> None:
        self.routes[prefix] = handler


    # -- running -----------------------------------------------------------------------------
    async def serve(self, host: str = "127.0.0.1", port: int = 8080, *, reuse_port: bool = False,
                    task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Serve until ``shutdown()``; then stop accepting, end every session with
        ``{"type":"end","reason":"shutdown"}``, drain for ``limits.drain_timeout_s`` and return."""
        self.listeners = await transport.open_listeners(host, port, reuse_port=reuse_port)
        self.port = self.listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as connections:
            accept_scope = trio.CancelScope()

            async def accept(task_status=trio.TASK_STATUS_IGNORED):
                with accept_scope:
                    await transport.serve(self._handle, self.listeners, self.limits,
                                          handler_nursery=connections, task_status=task_status)

            await connections.start(accept)
            task_status.started(self)
            await self._stop.wait()
            accept_scope.cancel()
            for listener in self.listeners:
                await listener.aclose()
            log.info("shutting down: ending %d sessions", len(self.sessions))
            for session in list(self.sessions):
                connections.start_soon(session.end, "shutdown", 1001)
            connections.cancel_scope.deadline = trio.current_time() + self.limits.drain_timeout_s

    def shutdown(self) -> None:
        self._stopping = True
        self._stop.set()

    # -- per connection ----------------------------------------------------------------------
    async def _handle(self, hs: Handshake) -> None:
        if hs.path == "/metrics":
            await hs.respond(200, self.metrics.render(), "text/plain; version=0.0.4")
            return
        if hs.path == "/healthz":
            await hs.respond(503 if self._stopping else 200, b"ok\n", "text/plain")
            return
        try:
            if not self._rate.allow(self.client_ip(hs), trio.current_time()):
                raise Refused(429, "too many connection attempts from this address")
            handler, rest = self._route(hs.path)
            if self._stopping:
                raise Refused(503, "the gateway is shutting down")
            if self._admitted >= self.limits.max_sessions:
                raise Refused(503, "the gateway is at capacity; try again later")
        except Refused as refused:
            await self._refuse(hs, refused)
            return
        self._admitted += 1
        try:
            await handler(self, hs, rest)
        except trio.TooSlowError:
            if not hs.answered:
                await self._refuse(hs, Refused(503, "configuration lookup timed out"))
        except Refused as refused:
            if not hs.answered:
                await self._refuse(hs, refused)
        finally:
            self._admitted -= 1

    def client_ip(self, hs: Handshake) -> str:
        """The caller's address: the TCP peer, or behind a trusted proxy the address it appended
        to X-Forwarded-For (earlier entries are client-supplied and not trusted)."""
        if hs.remote_ip in self.limits.trusted_proxies:
            forwarded = ",".join(hs.headers.get_all("X-Forwarded-For"))
            last = forwarded.rsplit(",", 1)[-1].strip()
            if last:
                return last[:64]
        return hs.remote_ip

    def _route(self, path: str) -> tuple[RouteHandler, str]:
        for prefix, handler in self.routes.items():
            if path.startswith(prefix):
                rest = path[len(prefix):]
                if rest:
                    return handler, rest
        raise Refused(404, "no such endpoint")

    async def _refuse(self, hs: Handshake, refused: Refused) -> None:
        self.metrics.handshake(refused.status)
        log.info("refused %s from %s: %d %s", hs.path, self.client_ip(hs), refused.status,
                 refused.reason)
        headers = {"Retry-After": "1"} if refused.status in (429, 503) else None
        await hs.reject(refused.status, refused.reason, headers)

    async def run_session(self, session: Session) -> SessionStats:
        """Run an accepted session to its end, registered for shutdown and metrics."""
        self.metrics.handshake(101)
        self.sessions.add(session)
        self.metrics.session_started(session.stats)
        try:
            if self._stopping:
                await session.end("shutdown", 1001)
            return await session.run()
        finally:
            self.sessions.discard(session)
            self.metrics.session_ended(session.stats)
            log.info("session %s ended: %s", session.id, session.stats.summary())

    async def agent_for(self, kind: str, target_id: str):
        """(AgentInfo, connector) for a channel target ("agent" | "flow", id), or ``Refused``.
        Every route (widget, phone media streams) builds its agent leg through this."""
        if kind == "flow" and self.flow_runner is not None:
            return await self.flow_runner(target_id)
        info = await _agent_for(self, kind, target_id)
        try:
            return info, make_agent(info, self.limits)
        except UnknownAgentKind as exc:
            raise Refused(503, str(exc)) from None

    # -- web widget authentication -----------------------------------------------------------
    async def authorize_web(self, hs: Handshake, kind: str, target_id: str) -> ChannelInfo:
        """The active web channel this request may use, or ``Refused(403/404)``: a valid token
        bound to an active channel of this target, or else an allowed Origin."""
        token = hs.query.get("token")
        with trio.fail_after(self.limits.auth_timeout_s):
            if token is not None:
                return await self._by_token(token, kind, target_id)
            return await self._by_origin(hs.header("Origin"), kind, target_id)

    async def _by_token(self, token: str, kind: str, target_id: str) -> ChannelInfo:
        try:
            claims = tokens.verify(self.token_secret, token, "web")
        except tokens.TokenError as exc:
            raise Refused(403, f"session token rejected: {exc}") from None
        if claims.get("target") != f"{kind}:{target_id}":
            raise Refused(403, "session token is for another agent or flow")
        channel = await self.directory.get_channel(str(claims.get("ch")))
        if channel is None or channel.type != "web":
            raise Refused(403, "session token names no web channel")
        if _target(channel) != (kind, target_id):
            raise Refused(403, "the channel no longer targets this agent or flow")
        if channel.status != "active":
            raise Refused(403, f"channel is {channel.status}, not active")
        return channel

    async def _by_origin(self, origin: str | None, kind: str, target_id: str) -> ChannelInfo:
        if not origin:
            raise Refused(403, "a session token or an allowed Origin is required")
        channels = await self.directory.web_channels_for(kind, target_id)
        allowed = [c for c in channels if origin in c.allowed_origins]
        for channel in allowed:
            if channel.status == "active":
                return channel
        if allowed:
            raise Refused(403, f"channel is {allowed[0].status}, not active")
        raise Refused(403, "origin not allowed")


def _target(channel: ChannelInfo) -> tuple[str, str | None]:
    return ("agent", channel.agent_id) if channel.agent_id else ("flow", channel.flow_id)


def _widget_route(kind: str) -> RouteHandler:
    async def route(server: GatewayServer, hs: Handshake, target_id: str) -> None:
        channel = await server.authorize_web(hs, kind, target_id)
        agent_info, agent = await server.agent_for(kind, target_id)
        ws = await hs.accept()
        session_id = secrets.token_hex(8)
        stats = SessionStats("web")
        variables = {"agent_id": agent_info.id, "origin": hs.header("Origin"),
                     "user_agent": (hs.header("User-Agent") or "")[:200]}
        if kind == "flow":
            variables["flow_id"] = target_id
        start = Start(session_id=session_id, channel_id=channel.id, channel_type="web",
                      variables=variables)
        leg = WidgetLeg(ws, stats, server.limits.ping_interval_s)
        await server.run_session(Session(session_id, leg, agent, start, server.limits, stats))
    return route


async def _agent_for(server: GatewayServer, kind: str, target_id: str):
    """The agent behind a widget target (a flow's agent comes from ``server.flow_agent``)."""
    with trio.fail_after(server.limits.auth_timeout_s):
        if kind == "agent":
            agent = await server.directory.get_agent(target_id)
            if agent is None:
                raise Refused(404, "unknown agent")
            return agent
        flow = await server.directory.get_flow(target_id)
        if flow is None:
            raise Refused(404, "unknown flow")
        agent = server.flow_agent(flow) if server.flow_agent else None
        if hasattr(agent, "__await__"):
            agent = await agent
        if agent is None:
            raise Refused(503, "flows cannot run on this gateway yet (no flow engine)")
        return agent
