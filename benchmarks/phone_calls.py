"""How many Twilio calls does one gateway core carry?

    python -m benchmarks.phone_calls [--short] [--calls 25,50,75,100] [--seconds 10] [--repeat 3]
                                     [--workers 2]

N concurrent simulated Twilio media streams (a 20 ms µ-law frame every 20 ms each way, in Twilio's
exact JSON messages), all on 127.0.0.1, through the gateway to an EXTERNAL echo agent over
WebSocket (a separate process answering every 640-byte PCM16 16 kHz frame with one 960-byte
24 kHz frame). Three processes: the gateway under test, the echo agent, and a lean epoll load
generator (precomputed, unmasked-key frames shared by all calls; it only counts media frames).

Per N: frame k sent -> the k-th media message back, fully received ("added latency": includes four
loopback hops and the agent, so it is an upper bound of what the gateway adds), p50/p99; frames
later than 20 ms; gateway CPU per call-second. "max N per core": the largest N with p99 <= 5 ms,
no frame later than 20 ms and >= 99 % of frames echoed (with ``--repeat R``: in most of its R runs).

Side by side: a baseline gateway built on trio-websocket with Pipecat-style transcoding per frame
(json + base64 + audioop G.711 + soxr "VHQ" streaming resamplers, no pacing). ``--workers 2`` also
runs ``converse gateway``-style workers sharing the port with SO_REUSEPORT. Writes
benchmarks/results/phone_calls.json and phone_calls.png (latency against N).
"""
from __future__ import annotations

import argparse
import base64
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

from benchmarks.ws_transport import _cpu_ticks, _free_port, _pin, _valid, _wait_port, short_results

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "phone_calls.json"
PLOT = ROOT / "benchmarks" / "results" / "phone_calls.png"
SECRET = b"bench-secret-phone-calls"
INTERVAL = 0.020
P99_BUDGET_MS = 5.0
LATE_MS = 20.0
SERVERS = ["converse-gateway", "trio-websocket-pipecat-baseline"]
CHANNEL = "ch_bench"


# -- the external echo agent ----------------------------------------------------------------------
async def serve_agent(port: int) -> None:
    from gateway import transport
    from gateway.limits import Limits
    reply = b"\x10\x00" * 480                     # 20 ms at 24 kHz

    async def handler(hs):
        ws = await hs.accept()
        try:
            while True:
                message = await ws.receive()
                if type(message) is bytes:
                    await ws.send(reply)
        except transport.ConnectionClosed:
            pass
    limits = Limits(max_sessions=100_000, handshake_burst=100_000, handshake_rate_per_s=100_000)
    listeners = await transport.open_listeners("127.0.0.1", port)
    await transport.serve(handler, listeners, limits)


# -- servers under test ----------------------------------------------------------------------------
async def serve_gateway(port: int, agent_port: int, reuse_port: bool = False) -> None:
    from gateway import media
    from gateway.directory import AgentInfo, ChannelInfo, StaticDirectory
    from gateway.limits import Limits
    from gateway.server import GatewayServer
    directory = StaticDirectory(
        channels=[ChannelInfo(id=CHANNEL, type="voice", provider="twilio", status="active",
                              agent_id="echo")],
        agents=[AgentInfo(id="echo", name="echo", kind="websocket",
                          config={"url": f"ws://127.0.0.1:{agent_port}/"})])
    limits = Limits(max_sessions=10_000, handshake_burst=10_000, handshake_rate_per_s=10_000)
    server = GatewayServer(directory, SECRET, limits)
    media.install(server)
    await server.serve("127.0.0.1", port, reuse_port=reuse_port)


async def serve_baseline(port: int, agent_port: int, reuse_port: bool = False) -> None:
    """trio-websocket + Pipecat's per-frame transcoding (serializers/twilio.py): json, base64,
    audioop, soxr VHQ streams; the agent leg over trio-websocket too."""
    import warnings
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

    import numpy as np
    import soxr
    import trio
    from trio_websocket import ConnectionClosed, open_websocket_url, serve_websocket

    async def session(request):
        ws = await request.accept()
        up = soxr.ResampleStream(8000, 16000, 1, dtype="int16", quality="VHQ")
        down = soxr.ResampleStream(24000, 8000, 1, dtype="int16", quality="VHQ")
        try:
            sid = None
            while sid is None:
                msg = json.loads(await ws.get_message())
                if msg.get("event") == "start":
                    sid = msg["start"]["streamSid"]
            async with open_websocket_url(f"ws://127.0.0.1:{agent_port}/") as agent:
                await agent.send_message(json.dumps({"type": "start"}))

                async def from_agent():
                    while True:
                        pcm = await agent.get_message()
                        if isinstance(pcm, bytes):
                            pcm8 = down.resample_chunk(np.frombuffer(pcm, dtype=np.int16)).tobytes()
                            payload = base64.b64encode(audioop.lin2ulaw(pcm8, 2)).decode()
                            await ws.send_message(json.dumps({
                                "event": "media", "streamSid": sid,
                                "media": {"payload": payload}}, separators=(",", ":")))
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(from_agent)
                    while True:
                        msg = json.loads(await ws.get_message())
                        if msg.get("event") == "media":
                            pcm = audioop.ulaw2lin(base64.b64decode(msg["media"]["payload"]), 2)
                            pcm16 = up.resample_chunk(np.frombuffer(pcm, dtype=np.int16)).tobytes()
                            await agent.send_message(pcm16)
                        elif msg.get("event") == "stop":
                            nursery.cancel_scope.cancel()
        except ConnectionClosed:
            pass
    await serve_websocket(session, "127.0.0.1", port, ssl_context=None)


SERVE = {"converse-gateway": serve_gateway, "trio-websocket-pipecat-baseline": serve_baseline}


# -- load generator --------------------------------------------------------------------------------
def _text_frame(payload: bytes) -> bytes:
    """A client text frame with mask key 0 (the payload stays as is: frames can be shared)."""
    n = len(payload)
    if n < 126:
        head = bytes([0x81, 0x80 | n])
    elif n < 65536:
        head = bytes([0x81, 0x80 | 126]) + struct.pack(">H", n)
    else:
        head = bytes([0x81, 0x80 | 127]) + struct.pack(">Q", n)
    return head + b"\0\0\0\0" + payload


def _open(port: int, call: int) -> tuple[socket.socket, bytes]:
    from gateway.streamauth import issue_stream_token
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /media/twilio/{CHANNEL} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                  f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed during handshake")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head.split(b"\r\n")[0].decode())
    call_sid = f"CA{call:032x}"
    stream_sid = f"MZ{call:032x}"
    token = issue_stream_token(SECRET, "twilio", CHANNEL, call_sid)
    start = {"event": "start", "sequenceNumber": "1", "streamSid": stream_sid,
             "start": {"accountSid": "AC" + "0" * 32, "streamSid": stream_sid, "callSid": call_sid,
                       "tracks": ["inbound"], "customParameters": {"token": token},
                       "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000,
                                       "channels": 1}}}
    sock.sendall(_text_frame(b'{"event":"connected","protocol":"Call","version":"1.0.0"}')
                 + _text_frame(json.dumps(start).encode()))
    sock.setblocking(False)
    return sock, rest


def _media_frames(count: int) -> list[bytes]:
    """Twilio inbound media messages for ticks 0..count-1 (a quiet tone, ~speech level)."""
    import math
    ulaw = bytes((0x7F - int(8 * (1 + math.sin(i / 3)))) & 0xFF for i in range(160))
    payload = base64.b64encode(ulaw).decode()
    return [_text_frame(('{"event":"media","sequenceNumber":"%d","media":{"track":"inbound",'
                         '"chunk":"%d","timestamp":"%d","payload":"%s"}}'
                         % (k + 2, k + 1, k * 20, payload)).encode()) for k in range(count)]


class _Call:
    __slots__ = ("sock", "buf", "sent_at", "got")

    def __init__(self, sock, buf):
        self.sock = sock
        self.buf = buf
        self.sent_at: list[float] = []
        self.got = 0            # media messages received


def _media_messages(buf: bytes) -> tuple[int, bytes]:
    """Media text frames among the complete frames of ``buf``, and the rest."""
    pos, n, count = 0, len(buf), 0
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
        if buf[pos] & 0x0F == 1 and buf.startswith(b'{"event":"media"', pos + head):
            count += 1
        pos += head + length
    return count, buf[pos:]


def load(port: int, calls: int, seconds: float) -> dict:
    sel = selectors.EpollSelector()
    conns = []
    for i in range(calls):
        sock, rest = _open(port, i)
        c = _Call(sock, rest)
        conns.append(c)
        sel.register(sock, selectors.EVENT_READ, c)
    warmup = 0.5
    frames = _media_frames(int((warmup + seconds) / INTERVAL) + 2)
    latencies, slips = [], []
    start = time.perf_counter()
    end = start + warmup + seconds
    step = INTERVAL / calls
    tick = 0
    now = start
    while now < end:
        due = start + tick * step
        timeout = due - now
        for key, _ in sel.select(timeout if timeout > 0 else 0):
            c = key.data
            try:
                data = c.sock.recv(262144)
            except BlockingIOError:
                continue
            if not data:
                raise ConnectionError("the server closed a call")
            t = time.perf_counter()
            got, c.buf = _media_messages(c.buf + data)
            for _ in range(got):
                if c.got < len(c.sent_at):
                    sent = c.sent_at[c.got]
                    if sent - start > warmup:
                        latencies.append(t - sent)
                c.got += 1
        now = time.perf_counter()
        while due <= now and now < end:
            c = conns[tick % calls]
            if now - start > warmup:
                slips.append(now - due)
            try:
                c.sock.send(frames[len(c.sent_at)])
                c.sent_at.append(now)
            except BlockingIOError:
                pass
            tick += 1
            due = start + tick * step
    sent = sum(len(c.sent_at) for c in conns)
    echoed = sum(min(c.got, len(c.sent_at)) for c in conns)
    for c in conns:
        sel.unregister(c.sock)
        c.sock.close()
    latencies.sort()
    slips.sort()

    def q(values, p):
        if not values:
            return None
        return round(values[min(len(values) - 1, int(p * len(values)))] * 1000, 3)
    return {"frames_sent": sent, "frames_echoed": echoed, "p50_ms": q(latencies, 0.5),
            "p99_ms": q(latencies, 0.99),
            "late_frames": sum(1 for x in latencies if x > LATE_MS / 1000),
            "generator_slip_p99_ms": q(slips, 0.99)}


def _spawn(kind: str, port: int, agent_port: int, reuse: bool) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "benchmarks.phone_calls", "--serve", kind, "--port", str(port),
           "--agent-port", str(agent_port)]
    if reuse:
        cmd.append("--reuse-port")
    return subprocess.Popen(cmd, cwd=ROOT)


def measure(kind: str, calls: int, seconds: float, agent_port: int, workers: int = 1) -> dict:
    port = _free_port()
    procs = [_spawn(kind, port, agent_port, workers > 1) for _ in range(workers)]
    try:
        for p in procs:
            _wait_port(port, p)
        time.sleep(0.3 if workers > 1 else 0)     # every worker listening before connections
        marks = {}

        def sample():
            time.sleep(0.8 + calls * 0.004)        # connect + warm-up
            marks["t0"], marks["c0"] = time.perf_counter(), sum(_cpu_ticks(p.pid) for p in procs)
            marks["s0"] = _steal()
            time.sleep(max(0.5, seconds - 0.5))
            marks["t1"], marks["c1"] = time.perf_counter(), sum(_cpu_ticks(p.pid) for p in procs)
            marks["s1"] = _steal()
        sampler = threading.Thread(target=sample)
        sampler.start()
        result = load(port, calls, seconds)
        sampler.join()
        if kind == SERVERS[0]:
            result["gateway_metrics"] = _metrics(port)
        cpu = (marks["c1"] - marks["c0"]) / os.sysconf("SC_CLK_TCK") / (marks["t1"] - marks["t0"])
        echoed_per_s = result["frames_echoed"] / seconds
        (steal0, all0), (steal1, all1) = marks["s0"], marks["s1"]
        return {"server": kind, "calls": calls, "workers": workers, "valid": _valid(result),
                "cpu_pct": round(100 * cpu, 1),
                # CPU time the hypervisor gave to other guests meanwhile: a point with a large
                # share ran on a machine slower than it looked (its latency says little)
                "steal_pct": round(100 * (steal1 - steal0) / max(1, all1 - all0), 1),
                "cpu_us_per_call_second": round(1e6 * cpu / calls, 1),
                # steadier when the box saturates: gateway CPU per frame echoed (in + out)
                "cpu_us_per_frame": round(1e6 * cpu / echoed_per_s, 1) if echoed_per_s else None,
                **result}
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _steal() -> tuple[int, int]:
    """(steal ticks, all ticks) of the machine so far, from /proc/stat ((0, 0) if unreadable)."""
    try:
        fields = [int(x) for x in pathlib.Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    return (fields[7] if len(fields) > 7 else 0), sum(fields)


def _metrics(port: int) -> dict:
    """The gateway's own counters (GET /metrics on its port; with workers, whichever answers)."""
    import httpx
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return {}
    out, buckets = {}, []
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name.startswith("converse_added_latency_seconds_bucket"):
            le = name.partition('le="')[2].partition('"')[0]
            buckets.append((float(le), float(value)))
        elif name.startswith("converse_") and "{" not in name:
            out[name[len("converse_"):]] = float(value)
    total = out.get("added_latency_seconds_count", 0)
    for q in (0.5, 0.99):           # upper bound of the bucket holding the quantile
        hit = next((le for le, n in buckets if total and n >= q * total), None)
        out[f"gateway_added_latency_p{int(q * 100)}_le_ms"] = None if hit is None else hit * 1000
    return out


def passes(r: dict) -> bool:
    return bool(r.get("valid") and r.get("p99_ms") is not None and r["p99_ms"] <= P99_BUDGET_MS
                and r["late_frames"] == 0 and r["frames_echoed"] >= 0.99 * r["frames_sent"])


def _row(r: dict) -> str:
    if "error" in r:
        return f"{r['server']:>32} x{r['workers']} {r['calls']:>4}  error: {r['error']}"
    flag = "ok " if passes(r) else ("GEN" if not r["valid"] else "-- ")
    gw = r.get("gateway_metrics") or {}
    inner = (f"  gateway inbound p99 <= {gw['gateway_added_latency_p99_le_ms']:g} ms"
             if gw.get("gateway_added_latency_p99_le_ms") is not None else "")
    if gw.get("frames_out_total"):
        inner += f"  held by the pacer {100 * gw.get('held_out_total', 0) / gw['frames_out_total']:.0f}%"
    return (f"{flag} {r['server']:>32} x{r['workers']} {r['calls']:>4} calls  cpu "
            f"{r['cpu_pct']:>6.1f}% ({r['cpu_us_per_call_second']:>7.0f} us/call-s, "
            f"{r['cpu_us_per_frame'] or 0:>4.0f} us/frame)  "
            f"p50 {r['p50_ms'] or 0:>7.2f} ms  p99 {r['p99_ms'] or 0:>8.2f} ms  "
            f"late {r['late_frames']:>5}  echoed {r['frames_echoed']}/{r['frames_sent']}  "
            f"gen slip p99 {r['generator_slip_p99_ms']} ms  steal {r.get('steal_pct', 0)}%{inner}")


def plot(results: list[dict], path: pathlib.Path = PLOT) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    for kind in sorted({(r["server"], r["workers"]) for r in results if "error" not in r}):
        pts = sorted((r["calls"], r["p99_ms"], r["p50_ms"]) for r in results
                     if (r["server"], r["workers"]) == kind and "error" not in r and r["p99_ms"])
        if pts:
            # every run as a dot, the median run per N as the line (repeats scatter on a VM)
            label = f"{kind[0]} x{kind[1]}"
            ns = sorted({p[0] for p in pts})
            for col, style, name in ((1, "-", "p99"), (2, "--", "p50")):
                med = [sorted(p[col] for p in pts if p[0] == n)[
                    len([p for p in pts if p[0] == n]) // 2] for n in ns]
                line, = ax.plot(ns, med, ls=style, label=f"{label} {name} (median run)")
                ax.scatter([p[0] for p in pts], [p[col] for p in pts], s=10,
                           color=line.get_color())
    ax.axhline(P99_BUDGET_MS, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("concurrent Twilio calls")
    ax.set_ylabel("added latency (ms, log)")
    ax.set_yscale("log")
    ax.set_title("Phone calls through one gateway: added latency against N")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="concurrent Twilio calls per gateway core")
    parser.add_argument("--short", action="store_true", help="CI mode: N=20,40, 3 s each")
    parser.add_argument("--calls", default=None)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per point; a point holds when most of its runs pass (on a VM "
                             "one hypervisor stall of 20 ms fails a run whatever the load)")
    parser.add_argument("--workers", type=int, default=1,
                        help="also run converse-gateway with this many SO_REUSEPORT workers")
    parser.add_argument("--serve", choices=[*SERVERS, "agent"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--agent-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        import logging

        import trio
        logging.basicConfig(level=os.environ.get("CONVERSE_BENCH_LOG", "WARNING"))
        logging.getLogger("converse.transport.wire").propagate = False     # connection chatter
        # SIGINT ends a server at once (no drain): the measurement is over
        profile = os.environ.get("CONVERSE_BENCH_PROFILE") if args.serve != "agent" else None
        if profile:                   # a cProfile of the server under test, for optimising
            import cProfile
            prof = cProfile.Profile()
            prof.enable()

            def stop(*_):
                prof.disable()
                prof.dump_stats(f"{profile}.{args.serve}.{os.getpid()}")
                os._exit(0)
            signal.signal(signal.SIGINT, stop)
        else:
            signal.signal(signal.SIGINT, lambda *_: os._exit(0))
        try:
            if args.serve == "agent":
                _pin(1)
                trio.run(serve_agent, args.port)
            else:
                _pin(0)
                trio.run(SERVE[args.serve], args.port, args.agent_port, args.reuse_port)
        except KeyboardInterrupt:
            pass
        return 0
    # "Per gateway core" needs a core the gateway has to itself: by default it is pinned to CPU 0
    # and the agent and this load generator share CPU 1 (unpinned, the three float and a busy
    # neighbour's slice shows up as gateway latency). CONVERSE_BENCH_PIN=0 lets them float;
    # with --workers the gateway processes always float (they would share CPU 0).
    pin_default = args.workers == 1 and "CONVERSE_BENCH_PIN" not in os.environ
    if pin_default:
        os.environ["CONVERSE_BENCH_PIN"] = "1"         # inherited by the processes spawned below
    pinned = os.environ.get("CONVERSE_BENCH_PIN") == "1"
    _pin(1)
    seconds = args.seconds or (3.0 if args.short else 8.0)
    calls = [int(n) for n in (args.calls or ("20,40" if args.short
                                             else "25,50,75,100,125")).split(",")]
    load_before = os.getloadavg()
    print(f"phone_calls: N Twilio calls, 20 ms frames each way, external echo agent; "
          f"{seconds:g} s per point, load average {load_before[0]:.1f}"
          f"{'; gateway pinned to CPU 0, agent + load on CPU 1' if pinned else ''}")
    agent_port = _free_port()
    agent = subprocess.Popen([sys.executable, "-m", "benchmarks.phone_calls", "--serve", "agent",
                              "--port", str(agent_port)], cwd=ROOT)
    results = []
    try:
        _wait_port(agent_port, agent)
        runs = [(kind, 1) for kind in args.servers.split(",")]
        if args.workers > 1:
            runs.append(("converse-gateway", args.workers))
        for n in calls:
            for _ in range(max(1, args.repeat)):
                for kind, workers in runs:
                    try:
                        r = measure(kind, n, seconds, agent_port, workers)
                    except Exception as exc:
                        r = {"server": kind, "calls": n, "workers": workers, "error": str(exc)}
                    results.append(r)
                    print(_row(r), flush=True)
    finally:
        agent.send_signal(signal.SIGINT)
        try:
            agent.wait(5)
        except subprocess.TimeoutExpired:
            agent.kill()
    summary, passed = {}, {}
    for kind, workers in sorted({(r["server"], r["workers"]) for r in results}):
        name = f"{kind} x{workers}"
        held = []
        for n in calls:
            runs_n = [r for r in results if (r["server"], r["workers"], r["calls"])
                      == (kind, workers, n)]
            ok = sum(1 for r in runs_n if passes(r))
            passed[f"{name} N={n}"] = f"{ok}/{len(runs_n)}"
            if runs_n and 2 * ok > len(runs_n):
                held.append(n)
        summary[name] = max(held, default=0)
        tally = ", ".join("N=%d %s" % (n, passed[f"{name} N={n}"]) for n in calls)
        print(f"max calls at p99 <= {P99_BUDGET_MS:g} ms, none late > {LATE_MS:g} ms: {name}: "
              f"{summary[name] or 'none of the tested N'}"
              + (f"  (runs passed: {tally})" if args.repeat > 1 else ""))

    def median(kind: str, n: int, key: str):
        values = sorted(r[key] for r in results if r["server"] == kind and r["workers"] == 1
                        and r["calls"] == n and "error" not in r and r.get(key))
        return values[len(values) // 2] if values else None
    ratios = {}
    for n in calls:
        ours, base = median(SERVERS[0], n, "cpu_us_per_frame"), median(SERVERS[1], n,
                                                                          "cpu_us_per_frame")
        if not (ours and base):
            continue
        ratios[n] = round(base / ours, 2)
        print(f"N={n}: baseline CPU per echoed frame is {ratios[n]}x ours (median of runs: ours "
              f"{ours:.0f} us, baseline {base:.0f} us; per call-second "
              f"{median(SERVERS[0], n, 'cpu_us_per_call_second'):.0f} vs "
              f"{median(SERVERS[1], n, 'cpu_us_per_call_second'):.0f} us)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    short_results(RESULTS, args.short).write_text(json.dumps({
        "benchmark": "phone_calls", "short": args.short, "seconds_per_point": seconds,
        "pinned": pinned,
        "p99_budget_ms": P99_BUDGET_MS, "late_ms": LATE_MS, "cpus": os.cpu_count(),
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        "repeat": args.repeat, "runs_passed": passed,
        "max_calls": summary, "baseline_cpu_ratio_by_n": ratios, "results": results},
        indent=2) + "\n")
    try:
        plot(results, short_results(PLOT, args.short))
    except Exception as exc:          # the plot is a convenience; the JSON is the record
        print(f"plot not written: {exc}")
    if pin_default:
        del os.environ["CONVERSE_BENCH_PIN"]
    return 0


if __name__ == "__main__":
    sys.exit(main())
