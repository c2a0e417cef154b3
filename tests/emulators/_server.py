"""The common machinery of every provider emulator: a real HTTP server on 127.0.0.1.

Each emulator is a :class:`ThreadingHTTPServer` in a background thread (so it serves sync SDKs,
httpx on Trio and a live control plane alike) with

* a route table: ``(method, path regex, route name, handler)``; handlers get a :class:`Request`
  and return a :class:`Reply`;
* a fault-injection API, per route name or ``"*"``: :meth:`Emulator.fail` (an HTTP error with the
  provider's error body, e.g. 500, or 429 with ``Retry-After``), :meth:`Emulator.hang` (answer
  after N seconds; stopping the emulator wakes every hanging handler), :meth:`Emulator.drop`
  (close the connection without answering);
* a request log (:meth:`Emulator.calls`) with Authorization stripped.

Subclasses own the provider-specific parts: routes, authentication and error bodies.
"""
from __future__ import annotations

import base64
import json
import re
import socket
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

MAX_BODY = 1 << 20          # requests bigger than this get 413: emulators are not storage


@dataclass
class Request:
    method: str
    path: str
    route: str
    params: dict[str, str]               # query string, last value wins
    headers: dict[str, str]              # lower-case names, Authorization removed
    body: bytes
    match: dict[str, str] = field(default_factory=dict)
    auth: tuple[str, str] | None = None  # Basic credentials, when given
    bearer: str | None = None            # Bearer token, when given

    @property
    def form(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(self.body.decode("utf-8", "replace"),
                                           keep_blank_values=True))

    def json(self) -> Any:
        """The JSON body, or None when it is missing or malformed."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None


@dataclass
class Reply:
    status: int
    body: Any = None                     # JSON-encoded unless bytes/str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    route: str                           # a route name or "*"
    kind: str                            # "status" | "hang" | "drop"
    remaining: int | None                # None: forever
    status: int = 500
    body: Any = None
    retry_after: float | None = None
    seconds: float = 0.0


class HttpError(Exception):
    """Raised by handlers to answer with the provider's error body for ``status``."""

    def __init__(self, status: int, message: str, **extra):
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


class Emulator:
    """Base class; see the module docstring. Use as a context manager or start()/stop()."""

    name = "emulator"

    def __init__(self):
        self.lock = threading.RLock()
        self._faults: list[Fault] = []
        self._log: list[Request] = []
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._routes: list[tuple[str, re.Pattern, str, Callable[[Request], Reply]]] = []
        self.setup_routes()

    # ----- lifecycle -----------------------------------------------------------------------
    def start(self) -> "Emulator":
        self._stopping.clear()
        handler = type("Handler", (_Handler,), {"emulator": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name=f"{self.name}-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()             # wakes hanging handlers
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.close_connections()
            self._thread.join(timeout=5)
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT (no trailing slash)."""
        assert self._server is not None, "emulator not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # ----- faults --------------------------------------------------------------------------
    def fail(self, route: str = "*", status: int = 500, *, times: int | None = 1,
             body: Any = None, retry_after: float | None = None) -> None:
        """Answer the next ``times`` matching requests (None: all) with HTTP ``status`` and the
        provider's error body (or ``body``); ``retry_after`` adds a Retry-After header."""
        self._add(Fault(route, "status", times, status=status, body=body, retry_after=retry_after))

    def hang(self, route: str = "*", seconds: float = 60.0, *, times: int | None = 1) -> None:
        """Hold the next ``times`` matching requests ``seconds`` before answering normally."""
        self._add(Fault(route, "hang", times, seconds=seconds))

    def drop(self, route: str = "*", *, times: int | None = 1) -> None:
        """Close the connection of the next ``times`` matching requests without an answer."""
        self._add(Fault(route, "drop", times))

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()

    def calls(self, route: str | None = None) -> list[Request]:
        """Requests received so far (all, or those of one route), oldest first."""
        with self.lock:
            return [r for r in self._log if route is None or r.route == route]

    def _add(self, fault: Fault) -> None:
        if fault.route != "*" and fault.route not in self.route_names():
            raise ValueError(f"{self.name} has no route {fault.route!r}; "
                             f"known: {sorted(self.route_names())}")
        with self.lock:
            self._faults.append(fault)

    def _take_fault(self, route: str) -> Fault | None:
        with self.lock:
            for fault in self._faults:
                if fault.route in ("*", route) and fault.remaining != 0:
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    return fault
        return None

    # ----- routing (subclasses) ------------------------------------------------------------
    def setup_routes(self) -> None:
        raise NotImplementedError

    def route(self, method: str, pattern: str, name: str,
              handler: Callable[[Request], Reply]) -> None:
        self._routes.append((method, re.compile(pattern + r"\Z"), name, handler))

    def route_names(self) -> set[str]:
        return {name for _, _, name, _ in self._routes}

    def authenticate(self, req: Request) -> None:
        """Raise HttpError(401, ...) unless the request carries valid credentials."""
        raise NotImplementedError

    def error_body(self, status: int, message: str, extra: dict) -> Any:
        """The provider's error body for ``status`` (JSON-able)."""
        return {"status": status, "message": message}

    def not_found(self, req: Request) -> Reply:
        return Reply(404, self.error_body(404, f"The requested resource {req.path} was not found",
                                          {}))

    # ----- dispatch (called from handler threads) ------------------------------------------
    def _dispatch(self, handler: "_Handler") -> Reply | None:
        parsed = urllib.parse.urlsplit(handler.path)
        path = urllib.parse.unquote(parsed.path)
        length = int(handler.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return Reply(413, self.error_body(413, "request too large", {}))
        body = handler.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in handler.headers.items()}
        req = Request(handler.command, path, "", dict(urllib.parse.parse_qsl(
            parsed.query, keep_blank_values=True)), headers, body)
        _split_auth(req, headers.pop("authorization", ""))
        for method, pattern, name, fn in self._routes:
            m = pattern.match(path)
            if m and method == handler.command:
                req.route, req.match = name, m.groupdict()
                break
        else:
            with self.lock:
                self._log.append(req)
            return self.not_found(req)
        with self.lock:
            self._log.append(req)
        fault = self._take_fault(req.route)
        if fault is not None and fault.kind == "drop":
            return None
        if fault is not None and fault.kind == "hang":
            if self._stopping.wait(fault.seconds):
                return None              # shutting down: just drop it
        if fault is not None and fault.kind == "status":
            headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
            body = fault.body if fault.body is not None else self.error_body(
                fault.status, _reason(fault.status), {})
            return Reply(fault.status, body, headers)
        try:
            self.authenticate(req)
            with self.lock:
                return fn(req)
        except HttpError as exc:
            return Reply(exc.status, self.error_body(exc.status, exc.message, exc.extra))


def _split_auth(req: Request, value: str) -> None:
    scheme, _, rest = value.partition(" ")
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(rest.strip()).decode().partition(":")
            req.auth = (user, password)
        except (ValueError, UnicodeDecodeError):
            req.auth = None
    elif scheme.lower() == "bearer":
        req.bearer = rest.strip() or None


def _reason(status: int) -> str:
    from http import HTTPStatus
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class _Server(ThreadingHTTPServer):
    request_queue_size = 256         # tests open hundreds of connections at once

    def __init__(self, *args, **kwargs):
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request, client_address):
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End kept-alive connections too, so no handler thread outlives the emulator."""
        with self.sockets_lock:
            sockets = list(self.open_sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address):
        """Clients that give up (timeouts, drops) are normal here; anything else is printed."""
        import sys
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    emulator: Emulator
    protocol_version = "HTTP/1.1"
    # One write per answer and no Nagle: headers and body in separate small segments would
    # meet the client's delayed ACK and cost ~40 ms per request.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True

    def log_message(self, format, *args):   # quiet: pytest shows failures, not access logs
        pass

    def _handle(self):
        try:
            reply = self.emulator._dispatch(self)
        except Exception as exc:             # an emulator bug: answer 500 and say so
            reply = Reply(500, {"emulator_bug": repr(exc)})
        if reply is None:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if isinstance(reply.body, bytes):
            payload, ctype = reply.body, "application/octet-stream"
        elif isinstance(reply.body, str):
            payload, ctype = reply.body.encode(), "text/plain; charset=utf-8"
        elif reply.body is None:
            payload, ctype = b"", None
        else:
            payload, ctype = json.dumps(reply.body).encode(), "application/json"
        self.send_response(reply.status)
        if ctype and "Content-Type" not in reply.headers:
            self.send_header("Content-Type", ctype)
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle
