"""Which WebSocket layer should carry the media plane? An echo server per candidate, loaded like the
web widget loads the gateway: every connection sends one 640-byte binary frame every 20 ms.

    python -m benchmarks.ws_transport [--short] [--conns 50,100,200] [--seconds 10]

For each server and N: the server runs in its own process, the load generator (a lean epoll loop
over plain sockets, frames pre-built with a zero mask key so it costs little) runs here;
``CONVERSE_BENCH_PIN=1`` pins them to CPU 0 and 1 (only sensible on an otherwise idle machine),
``CONVERSE_BENCH_NICE=-10`` raises both above background load. CPU per echoed frame (µs) is the
figure that stays comparable on a busy machine; latency and "late" need an idle one. Reported: server CPU (% of one core, from /proc), echo round trip p50/p99, the
share of frames whose echo took longer than one frame interval (20 ms: "late"), lost frames, and the
generator's own scheduling slip (if that grows, the generator, not the server, is the bottleneck).
Writes benchmarks/results/ws_transport.json.

Candidates: raw Trio TCP (the floor: no WebSocket at all), trio-websocket (wsproto inside), Trio +
wsproto driven directly, Trio + ``websockets`` Sans-I/O (``gateway.transport``, what we ship), and
``websockets.trio`` (the library's own new Trio implementation) for reference.
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import pathlib
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from typing import Callable, Iterator

SERVERS = ["raw-trio-tcp", "trio-websocket", "trio+wsproto", "trio+websockets-sansio",
           "websockets.trio"]
FRAME = 640
INTERVAL = 0.020
RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "ws_transport.json"


# -- the servers (each runs in its own process: `--serve KIND --port P`) -------------------------
async def serve_raw(port: int) -> None:
    import trio

    async def echo(stream):
        try:
            while data := await stream.receive_some(65536):
                await stream.send_all(data)
        except trio.BrokenResourceError:
            pass
    await trio.serve_tcp(echo, port, host="127.0.0.1")


async def serve_trio_websocket(port: int) -> None:
    from trio_websocket import ConnectionClosed, serve_websocket

    async def echo(request):
        ws = await request.accept()
        try:
            while True:
                await ws.send_message(await ws.get_message())
        except ConnectionClosed:
            pass
    await serve_websocket(echo, "127.0.0.1", port, ssl_context=None)


async def serve_wsproto(port: int) -> None:
    import trio
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import (AcceptConnection, BytesMessage, CloseConnection, Ping, Request,
                                TextMessage)

    async def echo(stream):
        conn = WSConnection(ConnectionType.SERVER)
        try:
            while data := await stream.receive_some(65536):
                conn.receive_data(data)
                out = b""
                for event in conn.events():
                    if isinstance(event, Request):
                        out += conn.send(AcceptConnection())
                    elif isinstance(event, (BytesMessage, TextMessage)):
                        out += conn.send(event.__class__(data=event.data))
                    elif isinstance(event, Ping):
                        out += conn.send(event.response())
                    elif isinstance(event, CloseConnection):
                        out += conn.send(event.response())
                if out:
                    await stream.send_all(out)
        except trio.BrokenResourceError:
            pass
    await trio.serve_tcp(echo, port, host="127.0.0.1")


async def serve_sansio(port: int) -> None:
    from gateway import transport
    from gateway.limits import Limits

    async def echo(handshake):
        ws = await handshake.accept()
        try:
            while True:
                await ws.send(await ws.receive())
        except transport.ConnectionClosed:
            pass
    listeners = await transport.open_listeners("127.0.0.1", port)
    await transport.serve(echo, listeners, Limits())


async def serve_websockets_trio(port: int) -> None:
    import trio
    from websockets.exceptions import ConnectionClosed
    from websockets.trio.server import serve

    async def echo(ws):
        try:
            async for message in ws:
                await ws.send(message)
        except ConnectionClosed:
            pass
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: serve(echo, port, host="127.0.0.1",
                                                      compression=None, task_status=task_status))


SERVE = {"raw-trio-tcp": serve_raw, "trio-websocket": serve_trio_websocket,
         "trio+wsproto": serve_wsproto, "trio+websockets-sansio": serve_sansio,
         "websockets.trio": serve_websockets_trio}


# -- the load generator --------------------------------------------------------------------------
def _handshake(sock: socket.socket, port: int, path: str = "/ws", headers: str = "") -> bytes:
    """The client side of the upgrade on a blocking socket; returns the bytes read past the 101.
    ``headers``: extra header lines, each ending in CRLF."""
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  f"Sec-WebSocket-Version: 13\r\n{headers}\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed during handshake")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head.split(b"\r\n")[0].decode())
    return rest


class _Conn:
    __slots__ = ("sock", "buf", "sent")

    def __init__(self, sock, buf=b""):
        self.sock = sock
        self.buf = buf
        self.sent = 0


def _ws_frames(buf: bytes) -> tuple[list[tuple[int, int, int]], bytes]:
    """The complete (unmasked, server-sent) frames at the start of ``buf`` as ``(opcode, payload
    offset, payload length)``, and the incomplete rest."""
    frames = []
    pos, n = 0, len(buf)
    while n - pos >= 2:
        length = buf[pos + 1] & 0x7F
        head = 2
        if length == 126:
            if n - pos < 4:
                break
            length = (buf[pos + 2] << 8) | buf[pos + 3]
            head = 4
        elif length == 127:
            if n - pos < 10:
                break
            length = struct.unpack_from(">Q", buf, pos + 2)[0]
            head = 10
        if n - pos < head + length:
            break
        frames.append((buf[pos] & 0x0F, pos + head, length))
        pos += head + length
    return frames, buf[pos:]


def _parse_ws(buf: bytes, out: list) -> bytes:
    """Append the 8-byte timestamp of every complete binary frame in ``buf``; return the rest."""
    frames, rest = _ws_frames(buf)
    for opcode, at, length in frames:
        if opcode == 2 and length >= 8:
            out.append(struct.unpack_from("<d", buf, at)[0])
    return rest


def _quantile_ms(values: list[float], p: float) -> float | None:
    """The ``p`` quantile of sorted seconds, in ms."""
    return round(values[min(len(values) - 1, int(p * len(values)))] * 1000, 3) if values else None


def load(port: int, conns: int, seconds: float, websocket: bool) -> dict:
    """Drive ``conns`` paced streams for ``seconds``; return latency statistics."""
    sel = selectors.EpollSelector()
    streams = []
    for _ in range(conns):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rest = _handshake(sock, port) if websocket else b""
        sock.setblocking(False)
        conn = _Conn(sock, rest)
        streams.append(conn)
        sel.register(sock, selectors.EVENT_READ, conn)
    header = bytes([0x82, 0x80 | 126]) + struct.pack(">H", FRAME) + b"\0\0\0\0" if websocket else b""
    pad = bytes(FRAME - 8)
    pack = struct.Struct("<d").pack
    rtts, slips, stamps = [], [], []
    sent = 0
    warmup = 0.5
    start = time.perf_counter()
    end = start + warmup + seconds
    step = INTERVAL / conns
    tick = 0
    now = start
    while now < end:
        due = start + tick * step
        timeout = due - now
        for key, _ in sel.select(timeout if timeout > 0 else 0):
            conn = key.data
            try:
                data = conn.sock.recv(262144)
            except BlockingIOError:
                continue
            if not data:
                raise ConnectionError("server closed a connection")
            t = time.perf_counter()
            if websocket:
                conn.buf = _parse_ws(conn.buf + data, stamps)
            else:
                buf = conn.buf + data
                whole = len(buf) // FRAME * FRAME
                for off in range(0, whole, FRAME):
                    stamps.append(struct.unpack_from("<d", buf, off)[0])
                conn.buf = buf[whole:]
            if t - start > warmup:
                rtts.extend(t - s for s in stamps if s - start > warmup)
            stamps.clear()
        now = time.perf_counter()
        while due <= now and now < end:
            conn = streams[tick % conns]
            if now - start > warmup:
                slips.append(now - due)
                sent += 1
            try:
                conn.sock.send(header + pack(now) + pad)
            except BlockingIOError:
                pass                          # the server is not reading: counts as lost
            tick += 1
            due = start + tick * step
    time.sleep(0.2)
    for conn in streams:
        sel.unregister(conn.sock)
        conn.sock.close()
    rtts.sort()
    slips.sort()
    late = sum(1 for r in rtts if r > INTERVAL)
    return {"frames_sent": sent, "frames_echoed": len(rtts),
            "p50_ms": _quantile_ms(rtts, 0.5), "p99_ms": _quantile_ms(rtts, 0.99),
            "late_pct": round(100 * late / max(1, len(rtts)), 2),
            "lost_pct": round(100 * max(0, sent - len(rtts)) / max(1, sent), 2),
            "generator_slip_p99_ms": _quantile_ms(slips, 0.99)}


SLIP_LIMIT_MS = 5.0


def _valid(result: dict) -> bool:
    """A point is only meaningful when the generator kept its own schedule: if it slipped, the
    machine (or the generator), not the server under test, set the latency."""
    slip = result.get("generator_slip_p99_ms")
    return slip is not None and slip <= SLIP_LIMIT_MS


def short_results(path: pathlib.Path, short: bool) -> pathlib.Path:
    """Where a run writes ``path``: ``name_short.ext`` for a --short (CI) run, gitignored, so a
    CI run never overwrites the committed full results."""
    return path.with_name(f"{path.stem}_short{path.suffix}") if short else path


def _cpu_ticks(pid: int) -> int:
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])           # utime + stime


def _pin(cpu: int) -> None:
    nice = int(os.environ.get("CONVERSE_BENCH_NICE", "0"))
    if nice:
        try:
            os.nice(nice)       # e.g. -10 (root): measure the server, not the neighbours' load
        except OSError:
            pass
    if os.environ.get("CONVERSE_BENCH_PIN") != "1":
        return                  # on a shared noisy box pinning starves whoever shares the CPU
    try:
        if os.cpu_count() and os.cpu_count() > 1:
            os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


@contextlib.contextmanager
def _server(module: str, kind: str) -> Iterator[tuple[subprocess.Popen, int]]:
    """``python -m module --serve kind`` on a free port, ready to connect; stopped (SIGINT, then
    kill) on exit."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", module, "--serve", kind, "--port", str(port)],
                            cwd=pathlib.Path(__file__).resolve().parents[1])
    try:
        _wait_port(port, proc)
        yield proc, port
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _with_cpu(proc: subprocess.Popen, drive: Callable[[], dict], skip: float,
              span: float) -> tuple[dict, float]:
    """Run ``drive()`` here and the server's CPU (share of one core) over ``span`` seconds that
    start ``skip`` seconds in: the measured window only, after connecting and warm-up."""
    marks = {}

    def sample():
        time.sleep(skip)
        marks["t0"], marks["c0"] = time.perf_counter(), _cpu_ticks(proc.pid)
        time.sleep(span)
        marks["t1"], marks["c1"] = time.perf_counter(), _cpu_ticks(proc.pid)
    sampler = threading.Thread(target=sample)
    sampler.start()
    result = drive()
    sampler.join()
    cpu = (marks["c1"] - marks["c0"]) / os.sysconf("SC_CLK_TCK") / (marks["t1"] - marks["t0"])
    return result, cpu


def measure(kind: str, conns: int, seconds: float) -> dict:
    with _server("benchmarks.ws_transport", kind) as (proc, port):
        result, cpu = _with_cpu(
            proc, lambda: load(port, conns, seconds, websocket=kind != "raw-trio-tcp"),
            skip=0.5 + 0.3, span=seconds - 0.3)
    frames_per_s = result["frames_echoed"] / seconds
    return {"server": kind, "conns": conns, "valid": _valid(result),
            "cpu_pct": round(100 * cpu, 1),
            # CPU time per echoed frame: robust to other load on the box, unlike latency
            "cpu_us_per_frame": round(1e6 * cpu / frames_per_s, 1) if frames_per_s else None,
            **result}


def run(servers, conns_list, seconds) -> list[dict]:
    _pin(1)
    results = []
    for conns in conns_list:
        for kind in servers:
            try:
                r = measure(kind, conns, seconds)
            except Exception as exc:        # a candidate that cannot be run is reported, not fatal
                r = {"server": kind, "conns": conns, "error": str(exc)}
            results.append(r)
            print(_row(r), flush=True)
    return results


def _row(r: dict) -> str:
    if "error" in r:
        return f"{r['server']:>24} {r['conns']:>5}  error: {r['error']}"
    return (f"{'' if r['valid'] else '(invalid: generator slipped) '}"
            f"{r['server']:>24} {r['conns']:>5} {r['cpu_pct']:>6.1f}% "
            f"{r['cpu_us_per_frame'] or 0:>6.1f} us/frame "
            f"p50 {r['p50_ms'] or 0:>7.2f} ms  p99 {r['p99_ms'] or 0:>8.2f} ms  "
            f"late {r['late_pct']:>5.1f}%  lost {r['lost_pct']:>5.1f}%  "
            f"gen slip p99 {r['generator_slip_p99_ms']} ms")


def _ratios(results: list[dict]) -> list[str]:
    lines = []
    by = {(r["server"], r["conns"]): r for r in results if "error" not in r}
    for (kind, conns), r in sorted(by.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        base = by.get(("trio-websocket", conns))
        if base and kind != "trio-websocket" and r["cpu_pct"] and base["p99_ms"]:
            per_frame = (r["cpu_us_per_frame"] / base["cpu_us_per_frame"]
                         if r["cpu_us_per_frame"] and base["cpu_us_per_frame"] else float("nan"))
            p99 = f"{r['p99_ms'] / base['p99_ms']:.2f}x" if r["p99_ms"] else "n/a (nothing echoed)"
            lines.append(f"N={conns}: {kind}: {per_frame:.2f}x the CPU per frame of trio-websocket, "
                         f"p99 {p99}")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="WebSocket layer comparison")
    parser.add_argument("--short", action="store_true", help="CI mode: 2 s per point")
    parser.add_argument("--conns", default="50,100,200")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        import trio
        _pin(0)
        try:
            trio.run(SERVE[args.serve], args.port)
        except* KeyboardInterrupt:      # how the driver stops a server (may arrive in a group)
            pass
        return 0
    seconds = args.seconds or (2.0 if args.short else 10.0)
    conns = [int(c) for c in args.conns.split(",")]
    print(f"ws_transport: echo of one {FRAME}-byte frame / {INTERVAL * 1000:.0f} ms / connection, "
          f"{seconds:g} s per point, load average {os.getloadavg()[0]:.1f}")
    load_before = os.getloadavg()
    results = run(args.servers.split(","), conns, seconds)
    for line in _ratios(results):
        print(line)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    short_results(RESULTS, args.short).write_text(json.dumps({
        "benchmark": "ws_transport", "short": args.short, "seconds_per_point": seconds,
        "frame_bytes": FRAME, "interval_ms": INTERVAL * 1000, "cpus": os.cpu_count(),
        "python": sys.version.split()[0], "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(), "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
