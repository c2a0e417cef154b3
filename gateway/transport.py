"""The WebSocket transport: a small Trio driver around ``websockets``' Sans-I/O protocol objects.

Chosen by measurement (benchmarks/ws_transport.py, README "Architecture"): the ``websockets``
``ServerProtocol``/``ClientProtocol`` parse and render frames (RFC 6455 complete, C-accelerated
masking); this module only moves bytes between them and a Trio stream. Everything the rest of the
gateway needs from a WebSocket library is here, so replacing the library touches one module:

- ``serve(handler, host, port, limits=...)``: accept loop (optionally ``SO_REUSEPORT`` for one process
  per core); reads the upgrade request under the handshake deadline and hands the handler a
  ``Handshake`` it answers with ``accept()`` (-> ``WebSocket``), ``reject(status, body)`` or
  ``respond(...)`` (plain HTTP, e.g. ``/metrics``) — so a request can be refused before the upgrade.
- ``connect(url, headers, timeout)``: the client side, for the external agent connector and tests.
- ``WebSocket``: ``receive() -> bytes | str``, ``send(bytes | str)``, ``close(code, reason)``,
  ``keepalive(interval)``, ``aclose()``. Errors surface as ``ConnectionClosed(code, reason)``.

Concurrency rule: one task reads (``receive``), any number of tasks may send; frames are rendered
into the protocol's write queue synchronously and flushed under one lock, so bytes leave in the order
they were rendered (a close frame is never overtaken by data rendered before it).
"""
from __future__ import annotations

import errno
import logging
import os
import socket as _stdsocket
import ssl
import struct
import urllib.parse

import trio
from websockets.client import ClientProtocol
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus, InvalidURI
from websockets.frames import Opcode
from websockets.http11 import Request, Response
from websockets.frames import apply_mask      # the C speedup when built
from websockets.protocol import Side, State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from gateway.limits import Limits

log = logging.getLogger("converse.transport")
# websockets logs request lines and frames at DEBUG: request paths carry session tokens and frames
# carry audio, so its logger is pinned at INFO whatever the root level (RELIABILITY 7).
_wire_log = logging.getLogger("converse.transport.wire")
_wire_log.setLevel(logging.INFO)

RECEIVE_BYTES = 65536
_TEXT, _BINARY, _CONT, _CLOSE = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.CLOSE
_OPEN, _CLOSED = State.OPEN, State.CLOSED
_SERVER = Side.SERVER
NOT_SENT, SENT, PENDING = 0, 1, 2        # WebSocket.try_send_binary results
_FIN_TEXT, _FIN_BINARY = 0x81, 0x82      # first header byte of an unfragmented data frame
_MASK_POOL_BYTES = 4096


class _MaskKeys:
    """Client masking keys (RFC 6455 5.3: from a strong entropy source), drawn from one
    ``os.urandom`` call per 1,024 frames instead of one syscall per frame."""

    __slots__ = ("_pool", "_pos")

    def __init__(self):
        self._pool = b""
        self._pos = _MASK_POOL_BYTES

    def next(self) -> bytes:
        pos = self._pos
        if pos >= _MASK_POOL_BYTES:
            self._pool, pos = os.urandom(_MASK_POOL_BYTES), 0
        self._pos = pos + 4
        return self._pool[pos:pos + 4]


_MASK_KEYS = _MaskKeys()


def render_frame(first: int, payload: bytes, masked: bool) -> bytes:
    """One unfragmented frame (``first`` = FIN + opcode) as it goes on the wire: what the
    protocol object renders, without its per-frame objects (the per-20-ms-frame send path)."""
    n = len(payload)
    if n < 126:
        head = bytes((first, n | 0x80)) if masked else bytes((first, n))
    elif n < 65536:
        head = struct.pack("!BBH", first, 0xFE if masked else 126, n)
    else:
        head = struct.pack("!BBQ", first, 0xFF if masked else 127, n)
    if masked:
        key = _MASK_KEYS.next()
        return head + key + apply_mask(payload, key)
    return head + payload


class ConnectionClosed(Exception):
    """The WebSocket is closed (or failed); ``code``/``reason`` say why (1006 when TCP just died)."""

    def __init__(self, code: int, reason: str = ""):
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.code} {self.reason}".strip()


class HandshakeError(Exception):
    """The opening handshake failed: timeout, refused connection, or an HTTP status other than 101."""

    def __init__(self, message: str, status: int | None = None, body: bytes = b""):
        super().__init__(message)
        self.status = status
        self.body = body


class WebSocket:
    """One open WebSocket connection on a Trio stream."""

    def __init__(self, stream: trio.abc.Stream, protocol, limits: Limits, *,
                 request: Request | None = None, remote: str = ""):
        self._stream = stream
        # Plain TCP streams get the write() fast path in _flush; TLS streams always go through Trio.
        self._sock = stream.socket if isinstance(stream, trio.SocketStream) else None
        self._proto = protocol
        self._limits = limits
        self._lock = trio.StrictFIFOLock()
        self._fragments: list[bytes] | None = None
        self._fragment_text = False
        self._ready: list = []             # messages parsed but not yet returned by receive()
        self._closed: ConnectionClosed | None = None
        self._rx = 0                       # bumped on every read: the keepalive watches it
        self._drained = False              # the last read was short: wait before reading again
        self._burst = 0                    # full reads in a row without a checkpoint
        self.request = request
        self.remote = remote

    # -- receiving ---------------------------------------------------------------------------
    async def receive(self) -> bytes | str:
        """The next complete message: ``bytes`` (binary) or ``str`` (text, valid UTF-8)."""
        ready = self._ready
        while not ready:
            if self._closed is not None:
                raise self._closed
            sock = self._sock
            fd = sock.fileno() if sock is not None else -1
            try:
                if fd < 0:
                    data = await self._stream.receive_some(RECEIVE_BYTES)
                else:
                    # Plain TCP: read(2) the socket ourselves (Trio's receive_some adds several
                    # layers per call). After a short read the kernel buffer is most likely
                    # empty: wait for readiness first instead of paying for an EAGAIN.
                    if self._drained:
                        await trio.lowlevel.wait_readable(fd)    # the int: no fileno() lookups
                    elif self._burst >= 16:            # data kept coming: let others run
                        self._burst = 0
                        await trio.lowlevel.checkpoint()
                    try:
                        data = os.read(fd, RECEIVE_BYTES)
                    except BlockingIOError:
                        self._drained = True
                        continue
                    except OSError:
                        data = b""                     # reset by the peer: as if EOF
                    self._drained = len(data) < RECEIVE_BYTES
                    self._burst = 0 if self._drained else self._burst + 1
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
                if self._closed is not None:
                    raise self._closed from None
            self._rx += 1
            proto = self._proto
            if data:
                if (proto.state is _OPEN and proto.current_size is None and not proto.extensions
                        and not proto.reader.buffer):
                    data = self._simple_frames(data)      # b"" if it failed the connection
                    if not data and self._closed is None:
                        continue        # all delivered here: the protocol object saw nothing
                if data:
                    proto.receive_data(data)
            else:
                proto.receive_eof()
            events = proto.events_received()
            if events:
                self._handle_frames(events)
            if proto.writes:
                await self._flush()
            if self._closed is None and (proto.parser_exc is not None or proto.state is _CLOSED):
                self._closed = self._close_state()
        return ready.pop(0)

    def _simple_frames(self, data: bytes) -> bytes:
        """Deliver the complete, unfragmented text/binary frames at the start of ``data`` without
        the protocol's generator parser (a frame pair's commonest work); return the rest, from
        the first frame that is anything else (control, fragment, RSV bits, wrong masking, over
        the size limit, cut short), for the protocol to parse. Only called at a frame boundary
        (nothing buffered in the protocol) of an open, unfragmented, extension-free stream."""
        masked = self._proto.side is _SERVER          # a server reads masked frames only
        proto = self._proto
        max_size = proto.max_message_size                # as the protocol's parser bounds it
        if proto.max_fragment_size is not None:
            max_size = (proto.max_fragment_size if max_size is None
                        else min(max_size, proto.max_fragment_size))
        i, n = 0, len(data)
        while n - i >= 2:
            b0, b1 = data[i], data[i + 1]
            if (b0 != 0x82 and b0 != 0x81) or (b1 >= 0x80) is not masked:
                break
            length = b1 & 0x7F
            j = i + 2
            if length == 126:
                if n - j < 2:
                    break
                length = (data[j] << 8) | data[j + 1]
                j += 2
            elif length == 127:
                break
            if max_size is not None and length > max_size:
                break
            if masked:
                if n - j < 4 + length:
                    break
                payload = apply_mask(data[j + 4:j + 4 + length], data[j:j + 4])
                j += 4 + length
            else:
                if n - j < length:
                    break
                payload = data[j:j + length]
                j += length
            self._deliver(payload, b0 == 0x81)
            if self._closed is not None:             # invalid UTF-8: the connection failed
                return b""
            i = j
        return data[i:] if i else data

    def _handle_frames(self, frames) -> None:
        for frame in frames:
            op = frame.opcode
            if op is _BINARY or op is _TEXT:
                if frame.fin:
                    self._deliver(frame.data, op is _TEXT)
                else:
                    self._fragments = [frame.data]
                    self._fragment_text = op is _TEXT
            elif op is _CONT:
                self._fragments.append(frame.data)
                if frame.fin:
                    data, self._fragments = b"".join(self._fragments), None
                    self._deliver(data, self._fragment_text)
            elif op is _CLOSE:
                self._closed = self._close_state()
                return
            # ping/pong: the protocol object already queued the pong

    def _deliver(self, data, is_text: bool) -> None:
        if not is_text:
            self._ready.append(data if type(data) is bytes else bytes(data))
            return
        try:
            self._ready.append(bytes(data).decode("utf-8"))
        except UnicodeDecodeError:
            # websockets leaves UTF-8 validation of text messages to the I/O layer: that is us.
            self._proto.fail(1007, "invalid UTF-8 in text message")
            self._closed = ConnectionClosed(1007, "invalid UTF-8 in text message")

    def _close_state(self) -> ConnectionClosed:
        proto = self._proto
        close = proto.close_rcvd if proto.close_rcvd is not None else proto.close_sent
        if close is None:
            return ConnectionClosed(1006, "connection lost")
        return ConnectionClosed(close.code, close.reason)

    # -- sending -----------------------------------------------------------------------------
    async def send(self, message: bytes | str) -> None:
        """Send one message; raises ``ConnectionClosed`` if the connection is gone or the write
        stayed blocked past ``limits.write_timeout_s`` (then the connection is aborted with 1011)."""
        proto = self._proto
        if self._closed is not None or proto.state is not _OPEN:
            raise self._closed or self._close_state()
        if type(message) is str:
            needs_flush = self._send_data(_FIN_TEXT, message.encode("utf-8"))
        else:
            needs_flush = self._send_data(_FIN_BINARY, message)
        if needs_flush:
            await self._flush()

    async def send_text(self, utf8: bytes) -> None:
        """Send already UTF-8-encoded bytes as a text message (no decode/encode round trip)."""
        proto = self._proto
        if self._closed is not None or proto.state is not _OPEN:
            raise self._closed or self._close_state()
        if self._send_data(_FIN_TEXT, utf8):
            await self._flush()

    def _send_data(self, first: int, payload: bytes) -> bool:
        """Write one data frame at once when ``_write_now`` can, else render it through the
        protocol object; True when what is rendered still has to be flushed."""
        done = self._write_now(first, payload)
        if done == NOT_SENT:
            if first == _FIN_TEXT:
                self._proto.send_text(payload)
            else:
                self._proto.send_binary(payload)
        return done != SENT

    async def send_many(self, messages) -> None:
        """Render several messages and flush them with one write (fewer syscalls per frame)."""
        proto = self._proto
        if self._closed is not None or proto.state is not _OPEN:
            raise self._closed or self._close_state()
        fd = self._writable_fd()
        if fd >= 0:
            masked = proto.side is not _SERVER
            frames = [render_frame(_FIN_TEXT, m.encode("utf-8"), masked) if type(m) is str
                      else render_frame(_FIN_BINARY, m, masked) for m in messages]
            if self._write_rendered(fd, b"".join(frames)) == SENT:
                return
        else:
            for message in messages:
                if type(message) is str:
                    proto.send_text(message.encode("utf-8"))
                else:
                    proto.send_binary(message)
        await self._flush()

    def try_send_binary(self, data: bytes) -> int:
        """Send a binary message without yielding, when that can be done in order: ``SENT`` (the
        kernel took all of it), ``PENDING`` (rendered, the rest waits for ``flush()``), or
        ``NOT_SENT`` (nothing done: use ``send()``). Lets a producer hand a frame straight to the
        socket instead of waking the task that sends (one task switch less per frame)."""
        if self._closed is not None:
            return NOT_SENT
        return self._write_now(_FIN_BINARY, data)

    def _writable_fd(self) -> int:
        """The socket's fd when a frame may be rendered by us and written at once without being
        overtaken or interleaved (plain TCP, an open extension-free connection, nothing rendered
        and unsent, no writer holding the lock); -1 otherwise."""
        proto = self._proto
        sock = self._sock
        if (sock is None or proto.writes or proto.extensions or self._lock.locked()
                or proto.state is not _OPEN):
            return -1
        return sock.fileno()

    def _write_now(self, first: int, payload: bytes) -> int:
        """The per-frame fast path: one data frame rendered here and written at once when
        ``_writable_fd`` allows. ``SENT``: the kernel took it all; ``PENDING``: the rest is queued
        for ``flush()``; ``NOT_SENT``: nothing done (render it through the protocol object)."""
        fd = self._writable_fd()
        if fd < 0:
            return NOT_SENT
        return self._write_rendered(fd, render_frame(first, payload, self._proto.side is not _SERVER))

    def _write_rendered(self, fd: int, buf: bytes) -> int:
        """write(2) rendered frames to ``fd`` (from ``_writable_fd``); what the kernel does not
        take is queued for ``flush()`` (which also reports a dead socket)."""
        try:
            sent = os.write(fd, buf)
        except OSError:
            sent = 0
        if sent == len(buf):
            return SENT
        self._proto.writes.append(buf[sent:])
        return PENDING

    async def flush(self) -> None:
        """Write whatever ``try_send_binary`` left behind (under the write deadline)."""
        await self._flush()

    async def ping(self, payload: bytes = b"") -> None:
        if self._proto.state is _OPEN:
            self._proto.send_ping(payload)
            await self._flush()

    async def _flush(self) -> None:
        sock = self._sock
        if sock is not None and not self._lock.locked():
            # Fast path: take the rendered bytes and write() them without yielding. Nothing else
            # can run in between and nobody holds the lock, so bytes still leave in render order;
            # the common case (the kernel takes it all) costs one syscall and no scheduling.
            fd = sock.fileno()                   # -1 once the socket is closed: never reused
            writes = self._proto.data_to_send()
            if not writes:
                return
            if fd >= 0:
                data = writes[0] if len(writes) == 1 else b"".join(writes)
                eof = writes[-1] == b""
                try:
                    sent = os.write(fd, data) if data else 0
                except BlockingIOError:
                    sent = 0
                except OSError:
                    if self._closed is None:
                        self._closed = ConnectionClosed(1006, "connection lost")
                    raise self._closed from None
                if sent == len(data) and not eof:
                    return
                self._lock.acquire_nowait()
                try:
                    await self._write(data[sent:], eof)
                finally:
                    self._lock.release()
                return
            self._proto.writes[:0] = writes      # closed socket: let the slow path report it
        async with self._lock:
            writes = self._proto.data_to_send()
            if writes:
                data = writes[0] if len(writes) == 1 else b"".join(writes)
                await self._write(data, writes[-1] == b"")

    async def _write(self, data: bytes, eof: bool) -> None:
        """Write under the write deadline (caller holds the lock); abort with 1011 past it."""
        try:
            if data:
                with trio.move_on_after(self._limits.write_timeout_s) as scope:
                    await self._stream.send_all(data)
                if scope.cancelled_caught:
                    await self._abort(1011, "write blocked: peer not reading")
                    raise self._closed
            if eof:
                await self._half_close()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            if self._closed is None:
                self._closed = ConnectionClosed(1006, "connection lost")
            raise self._closed from None

    async def _half_close(self) -> None:
        send_eof = getattr(self._stream, "send_eof", None)
        try:
            if send_eof is not None:
                await send_eof()
            else:
                await self._stream.aclose()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass

    async def _abort(self, code: int, reason: str) -> None:
        """Drop the TCP connection without a closing handshake (peer unresponsive)."""
        if self._closed is None:
            self._closed = ConnectionClosed(code, reason)
        await trio.aclose_forcefully(self._stream)

    # -- closing -----------------------------------------------------------------------------
    @property
    def closed(self) -> ConnectionClosed | None:
        return self._closed

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (send a close frame). The reading task sees the peer's
        answer as ``ConnectionClosed``; ``aclose()`` finishes the job."""
        proto = self._proto
        if proto.state is not _OPEN or self._closed is not None:
            return
        proto.send_close(code, reason[:120])
        try:
            await self._flush()
        except ConnectionClosed:
            pass

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Close completely: send a close frame if none was sent, wait (bounded) for the peer's,
        then close TCP. Call it when no other task is reading any more."""
        try:
            await self.close(code, reason)
            with trio.move_on_after(self._limits.close_timeout_s):
                while True:
                    await self.receive()       # discard late messages until the peer's close
        except ConnectionClosed:
            pass
        finally:
            await trio.aclose_forcefully(self._stream)

    async def keepalive(self, interval: float) -> None:
        """Ping every ``interval``; a peer that sent nothing at all across a full interval after a
        ping is half-open: the connection is aborted with 1011 (detection within two intervals).
        Runs until cancelled or the connection closes."""
        seen = -1
        while self._closed is None:
            if self._rx == seen:
                await self._abort(1011, "keepalive ping timeout")
                return
            seen = self._rx
            try:
                await self.ping()
            except ConnectionClosed:
                return
            await trio.sleep(interval)


# -- server side -------------------------------------------------------------------------------
class Handshake:
    """An upgrade request read off a new connection. The server's hook must answer it exactly once:
    ``accept()``, ``reject(status, body)`` or ``respond(status, body, content_type)``."""

    def __init__(self, stream, protocol: ServerProtocol, request: Request, remote_ip: str,
                 limits: Limits, early_frames: list = ()):
        self._stream = stream
        self._early_frames = early_frames
        self._proto = protocol
        self._limits = limits
        self.request = request
        self.remote_ip = remote_ip
        split = urllib.parse.urlsplit(request.path)
        self.path = split.path
        self.query = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
        self.headers: Headers = request.headers
        self.websocket: WebSocket | None = None
        self.answered = False

    def header(self, name: str) -> str | None:
        values = self.headers.get_all(name)
        return values[0] if len(values) == 1 else None

    async def accept(self) -> WebSocket:
        """Complete the upgrade. Raises ``HandshakeError`` (after answering the client with the
        right 4xx) when the request is not a valid WebSocket upgrade."""
        self.answered = True
        response = self._proto.accept(self.request)
        self._proto.send_response(response)
        ws = WebSocket(self._stream, self._proto, self._limits, request=self.request,
                       remote=self.remote_ip)
        if self._early_frames and response.status_code == 101:
            ws._handle_frames(self._early_frames)
        await ws._flush()
        if response.status_code != 101:
            raise HandshakeError("not a valid WebSocket upgrade", response.status_code)
        self.websocket = ws
        return ws

    async def reject(self, status: int, body: str, headers: dict | None = None) -> None:
        """Refuse before the upgrade with an HTTP status and a short plain-text reason."""
        self.answered = True
        response = self._proto.reject(status, body if body.endswith("\n") else body + "\n")
        for key, value in (headers or {}).items():
            response.headers[key] = value
        await self._send_response(response)

    async def respond(self, status: int, body: bytes, content_type: str) -> None:
        """A plain HTTP answer on the WebSocket port (health checks, metrics)."""
        self.answered = True
        response = self._proto.reject(status, "")
        # reject() already wrote Content-Length and Content-Type, and Headers' item assignment
        # appends: replace them, or clients see two conflicting Content-Lengths (httpx refuses).
        headers = response.headers
        del headers["Content-Type"], headers["Content-Length"]
        headers["Content-Type"] = content_type
        headers["Content-Length"] = str(len(body))
        response = Response(response.status_code, response.reason_phrase, headers, body)
        await self._send_response(response)

    async def _send_response(self, response: Response) -> None:
        self._proto.send_response(response)
        data = b"".join(self._proto.data_to_send())
        with trio.move_on_after(self._limits.write_timeout_s):
            try:
                await self._stream.send_all(data)
                await self._stream.send_eof()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass


def _feed_handshake(proto, data: bytes, kind: type) -> tuple | None:
    """Feed one read (``b""``: EOF) to a protocol in its handshake; the first ``kind`` event (the
    request or the response) and the frames that came behind it, or None while it is incomplete."""
    if data:
        proto.receive_data(data)
    else:
        proto.receive_eof()
    events = proto.events_received()
    for i, event in enumerate(events):
        if isinstance(event, kind):
            return event, events[i + 1:]
    return None


async def _read_request(stream, proto: ServerProtocol) -> tuple[Request, list] | None:
    while True:
        try:
            data = await stream.receive_some(RECEIVE_BYTES)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return None
        found = _feed_handshake(proto, data, Request)
        if found is not None:
            return found                          # frames pipelined behind it: for accept()
        writes = proto.data_to_send()
        if writes:                       # the protocol answered an unparseable request itself
            try:
                await stream.send_all(b"".join(writes))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            return None
        if not data:
            return None


def _remote_ip(stream) -> str:
    try:
        return stream.socket.getpeername()[0]
    except (AttributeError, OSError):
        return "?"


async def open_listeners(host: str, port: int, *, reuse_port: bool = False,
                         backlog: int = 1024) -> list[trio.SocketListener]:
    """Bound, listening sockets. ``reuse_port`` lets N worker processes share one port (the
    kernel spreads connections across them)."""
    infos = await trio.socket.getaddrinfo(host, port, type=_stdsocket.SOCK_STREAM,
                                          flags=_stdsocket.AI_PASSIVE)
    listeners = []
    for family, type_, proto, _, addr in infos[:1]:
        sock = trio.socket.socket(family, type_, proto)
        try:
            sock.setsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_REUSEPORT, 1)
            await sock.bind(addr)
            sock.listen(backlog)
        except BaseException:
            sock.close()
            raise
        listeners.append(trio.SocketListener(sock))
    return listeners


async def serve(handler, listeners, limits: Limits, *, handler_nursery=None,
                task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Accept connections forever (until cancelled). For each: read the upgrade request under
    ``limits.handshake_timeout_s``, then ``await handler(handshake)``. Connections that do not
    deliver a request in time are dropped. Handler exceptions are logged and contained to their
    connection; the handler's stream is always closed."""

    async def connection(stream) -> None:
        _tune_socket(stream, limits)
        try:
            proto = ServerProtocol(max_size=limits.max_message_bytes, logger=_wire_log)
            received = None
            with trio.move_on_after(limits.handshake_timeout_s):
                received = await _read_request(stream, proto)
            if received is None:
                return
            handshake = Handshake(stream, proto, received[0], _remote_ip(stream), limits,
                                  received[1])
            code, reason = 1000, ""
            try:
                await handler(handshake)
            except HandshakeError:
                pass
            except Exception:
                log.exception("connection handler failed for %s", handshake.path)
                code, reason = 1011, "internal error"
            if handshake.websocket is not None:
                with trio.CancelScope(shield=True):
                    await handshake.websocket.aclose(code, reason)
            elif not handshake.answered:
                await handshake.reject(500, "internal error")
        finally:
            await trio.aclose_forcefully(stream)

    await trio.serve_listeners(connection, listeners, handler_nursery=handler_nursery,
                               task_status=task_status)


def _tune_socket(stream, limits: Limits) -> None:
    sock = getattr(stream, "socket", None)
    if sock is None:
        return
    try:
        sock.setsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_SNDBUF, limits.socket_sndbuf)
    except OSError as exc:       # not fatal: the kernel default is merely larger
        if exc.errno != errno.ENOPROTOOPT:
            log.debug("SO_SNDBUF not set: %s", exc)


# -- client side -------------------------------------------------------------------------------
async def connect(url: str, headers: dict | list | None = None, *, timeout: float = 5.0,
                  limits: Limits | None = None) -> WebSocket:
    """Open a client WebSocket to ``url`` (ws:// or wss://) within ``timeout`` seconds.
    Raises ``HandshakeError`` (with ``status``/``body`` when the server answered HTTP)."""
    limits = limits or Limits()
    try:
        uri = parse_uri(url)
    except InvalidURI as exc:
        raise HandshakeError(f"invalid WebSocket URL: {exc}") from None
    stream = None
    try:
        with trio.fail_after(timeout):
            if uri.secure:
                stream = await trio.open_ssl_over_tcp_stream(
                    uri.host, uri.port, ssl_context=ssl.create_default_context())
            else:
                stream = await trio.open_tcp_stream(uri.host, uri.port)
            proto = ClientProtocol(uri, max_size=limits.max_message_bytes, logger=_wire_log)
            request = proto.connect()
            items = headers.items() if isinstance(headers, dict) else (headers or ())
            for key, value in items:
                request.headers[key] = value
            proto.send_request(request)
            await stream.send_all(b"".join(proto.data_to_send()))
            leftover = await _read_response(stream, proto)
    except trio.TooSlowError:
        if stream is not None:
            await trio.aclose_forcefully(stream)
        raise HandshakeError(f"handshake with {uri.host}:{uri.port} timed out") from None
    except (OSError, trio.BrokenResourceError) as exc:
        if stream is not None:
            await trio.aclose_forcefully(stream)
        raise HandshakeError(f"cannot connect to {uri.host}:{uri.port}: {exc}") from None
    except HandshakeError:
        await trio.aclose_forcefully(stream)
        raise
    ws = WebSocket(stream, proto, limits, remote=uri.host)
    if leftover:                         # frames that arrived with the 101 (e.g. a first ping)
        ws._handle_frames(leftover)
        if proto.writes:
            try:
                await ws._flush()        # the pong must not wait for our next read
            except ConnectionClosed:
                pass
    return ws


async def _read_response(stream, proto: ClientProtocol) -> list:
    while True:
        data = await stream.receive_some(RECEIVE_BYTES)
        found = _feed_handshake(proto, data, Response)
        if found is not None:
            exc = proto.handshake_exc
            if exc is not None:
                if isinstance(exc, InvalidStatus):
                    status = exc.response.status_code
                    raise HandshakeError(f"server answered HTTP {status}", status,
                                         bytes(exc.response.body or b""))
                raise HandshakeError(f"handshake failed: {exc}")
            return found[1]
        if not data:
            raise HandshakeError("connection closed during the handshake")
