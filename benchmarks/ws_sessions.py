"""How many live widget sessions does one gateway core carry?

    python -m benchmarks.ws_sessions [--short] [--sessions 25,50,100,150,200] [--seconds 10]

N concurrent web-widget sessions, each sending one 20 ms PCM16 16 kHz frame every 20 ms to an echo
agent in stream mode (each frame comes straight back resampled to 24 kHz through the native core),
all on 127.0.0.1. The gateway runs in its own process (one core's worth: a single Trio thread);
the load generator is a lean epoll loop here. Measured per N:

- gateway-added latency: frame k sent -> the k-th 960-byte echo frame fully received (includes two
  loopback hops, the session's queues, the agent, the resampler and the pacer);
- server CPU (% of one core) and CPU per session (% of a core);
- the largest N with p99 <= 5 ms ("max N per core").

Side by side in the same run: a baseline widget gateway built on trio-websocket doing the same work
per frame (same resampler) with none of the session machinery. Writes
benchmarks/results/ws_sessions.json. On a busy machine latency is noisy: the load average is
recorded with the results; CPU per session is the steadier figure.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import selectors
import socket
import struct
import sys
import time

from benchmarks.ws_transport import (_handshake, _pin, _quantile_ms, _server, _valid, _with_cpu,
                                     _ws_frames, short_results)

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "ws_sessions.json"
UP_FRAME = 640                  # 20 ms at 16 kHz
DOWN_FRAME = 960                # 20 ms at 24 kHz
INTERVAL = 0.020
P99_BUDGET_MS = 5.0
SERVERS = ["converse-gateway", "trio-websocket-baseline"]
ORIGIN = "http://localhost:8000"


# -- servers -------------------------------------------------------------------------------------
async def serve_gateway(port: int) -> None:
    from gateway.directory import AgentInfo, ChannelInfo, StaticDirectory
    from gateway.limits import Limits
    from gateway.server import GatewayServer
    directory = StaticDirectory(
        channels=[ChannelInfo(id="web", type="web", status="active", agent_id="echo",
                              allowed_origins=(ORIGIN,))],
        agents=[AgentInfo(id="echo", name="echo", kind="echo", config={"mode": "stream"})])
    limits = Limits(max_sessions=10_000, handshake_burst=10_000, handshake_rate_per_s=10_000)
    server = GatewayServer(directory, b"bench-secret", limits)
    await server.serve("127.0.0.1", port)


async def serve_baseline(port: int) -> None:
    from trio_websocket import ConnectionClosed, serve_websocket

    from gateway.audio import Resampler

    async def session(request):
        if request.headers and dict(request.headers).get(b"origin", b"").decode() != ORIGIN:
            await request.reject(403)
            return
        ws = await request.accept()
        resampler = Resampler(16000, 24000)
        try:
            while True:
                message = await ws.get_message()
                if isinstance(message, bytes):
                    await ws.send_message(resampler.process(message))
        except ConnectionClosed:
            pass
    await serve_websocket(session, "127.0.0.1", port, ssl_context=None)


SERVE = {"converse-gateway": serve_gateway, "trio-websocket-baseline": serve_baseline}


# -- load generator ------------------------------------------------------------------------------
def _open(port: int) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    rest = _handshake(sock, port, "/ws/agent/echo", f"Origin: {ORIGIN}\r\n")
    sock.setblocking(False)
    return sock, rest


class _Session:
    __slots__ = ("sock", "buf", "sent_at", "got", "acked")

    def __init__(self, sock, buf):
        self.sock = sock
        self.buf = buf
        self.sent_at: list[float] = []
        self.got = 0            # audio bytes received
        self.acked = 0          # frames whose echo is complete


def _binary_bytes(buf: bytes) -> tuple[int, bytes]:
    """Audio payload bytes in the complete frames of ``buf`` (text frames skipped) and the rest."""
    frames, rest = _ws_frames(buf)
    return sum(length for opcode, _, length in frames if opcode in (2, 0)), rest


def load(port: int, sessions: int, seconds: float) -> dict:
    sel = selectors.EpollSelector()
    conns = []
    for _ in range(sessions):
        sock, rest = _open(port)
        s = _Session(sock, rest)
        conns.append(s)
        sel.register(sock, selectors.EVENT_READ, s)
    # a quiet, speech-like signal: the echo agent's output is the same length whatever it is
    header = bytes([0x82, 0x80 | 126]) + struct.pack(">H", UP_FRAME) + b"\0\0\0\0"
    frame = header + (b"\x10\x00" * (UP_FRAME // 2))
    latencies, slips = [], []
    warmup = 0.5
    start = time.perf_counter()
    end = start + warmup + seconds
    step = INTERVAL / sessions
    tick = 0
    now = start
    while now < end:
        due = start + tick * step
        timeout = due - now
        for key, _ in sel.select(timeout if timeout > 0 else 0):
            s = key.data
            try:
                data = s.sock.recv(262144)
            except BlockingIOError:
                continue
            if not data:
                raise ConnectionError("the server closed a session")
            t = time.perf_counter()
            audio, s.buf = _binary_bytes(s.buf + data)
            s.got += audio
            while s.got >= (s.acked + 1) * DOWN_FRAME and s.acked < len(s.sent_at):
                sent = s.sent_at[s.acked]
                if sent - start > warmup:
                    latencies.append(t - sent)
                s.acked += 1
        now = time.perf_counter()
        while due <= now and now < end:
            s = conns[tick % sessions]
            if now - start > warmup:
                slips.append(now - due)
            try:
                s.sock.send(frame)
                s.sent_at.append(now)
            except BlockingIOError:
                pass
            tick += 1
            due = start + tick * step
    sent = sum(len(s.sent_at) for s in conns)
    acked = sum(s.acked for s in conns)
    for s in conns:
        sel.unregister(s.sock)
        s.sock.close()
    latencies.sort()
    slips.sort()
    return {"frames_sent": sent, "frames_echoed": acked, "p50_ms": _quantile_ms(latencies, 0.5),
            "p99_ms": _quantile_ms(latencies, 0.99),
            "late_pct": round(100 * sum(1 for x in latencies if x > INTERVAL)
                              / max(1, len(latencies)), 2),
            "generator_slip_p99_ms": _quantile_ms(slips, 0.99)}


def measure(kind: str, sessions: int, seconds: float) -> dict:
    with _server("benchmarks.ws_sessions", kind) as (proc, port):
        result, cpu = _with_cpu(proc, lambda: load(port, sessions, seconds),
                                skip=0.8 + sessions * 0.002,        # connect + warm-up
                                span=max(0.5, seconds - 0.5))
    echoed_per_s = result["frames_echoed"] / seconds
    return {"server": kind, "sessions": sessions, "valid": _valid(result),
            "cpu_pct": round(100 * cpu, 1),
            "cpu_pct_per_session": round(100 * cpu / sessions, 3),
            # steadier than latency on a busy machine: server CPU per echoed frame
            "cpu_us_per_frame": round(1e6 * cpu / echoed_per_s, 1) if echoed_per_s else None,
            **result}


def _row(r: dict) -> str:
    if "error" in r:
        return f"{r['server']:>24} {r['sessions']:>5}  error: {r['error']}"
    return (f"{'' if r['valid'] else '(invalid: generator slipped) '}"
            f"{r['server']:>24} {r['sessions']:>5} {r['cpu_pct']:>6.1f}% "
            f"({r['cpu_pct_per_session']:.3f}%/session, {r['cpu_us_per_frame'] or 0:.0f} us/frame)"
            f"  p50 {r['p50_ms'] or 0:>7.2f} ms  "
            f"p99 {r['p99_ms'] or 0:>8.2f} ms  late {r['late_pct']:>5.1f}%  "
            f"echoed {r['frames_echoed']}/{r['frames_sent']}  "
            f"gen slip p99 {r['generator_slip_p99_ms']} ms")


def max_n(results: list[dict], kind: str) -> int:
    ok = [r["sessions"] for r in results if r["server"] == kind and r.get("valid")
          and r["p99_ms"] is not None and r["p99_ms"] <= P99_BUDGET_MS
          and r["frames_echoed"] >= 0.99 * r["frames_sent"]]
    return max(ok, default=0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="concurrent widget sessions per gateway core")
    parser.add_argument("--short", action="store_true", help="CI mode: N=20,50 for 2 s each")
    parser.add_argument("--sessions", default=None)
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
    _pin(1)
    seconds = args.seconds or (2.0 if args.short else 10.0)
    sessions = [int(n) for n in (args.sessions or ("20,50" if args.short
                                                   else "25,50,100,150,200")).split(",")]
    load_before = os.getloadavg()
    print(f"ws_sessions: N widget sessions, 20 ms frames, stream echo agent; {seconds:g} s per point,"
          f" load average {load_before[0]:.1f}")
    results = []
    for n in sessions:
        for kind in args.servers.split(","):
            try:
                r = measure(kind, n, seconds)
            except Exception as exc:
                r = {"server": kind, "sessions": n, "error": str(exc)}
            results.append(r)
            print(_row(r), flush=True)
    summary = {kind: max_n(results, kind) for kind in args.servers.split(",")}
    for kind, n in summary.items():
        print(f"max sessions per core at p99 <= {P99_BUDGET_MS:g} ms: {kind}: {n or 'none tested'}")
    ours = {r["sessions"]: r for r in results if r["server"] == "converse-gateway" and "error" not in r}
    for r in results:
        if r["server"] != "converse-gateway" and "error" not in r and r["sessions"] in ours:
            o = ours[r["sessions"]]
            print(f"N={r['sessions']}: converse-gateway CPU/session is "
                  f"{o['cpu_pct_per_session'] / r['cpu_pct_per_session']:.2f}x the baseline's, "
                  f"p99 {o['p99_ms'] / r['p99_ms']:.2f}x" if r["p99_ms"] and o["p99_ms"] else "")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    short_results(RESULTS, args.short).write_text(json.dumps({
        "benchmark": "ws_sessions", "short": args.short, "seconds_per_point": seconds,
        "p99_budget_ms": P99_BUDGET_MS, "cpus": os.cpu_count(), "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(), "max_sessions_per_core": summary,
        "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
