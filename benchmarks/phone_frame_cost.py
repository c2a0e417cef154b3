"""Gateway cost per echoed frame pair on the phone-call path, two ways:

    python -m benchmarks.phone_frame_cost [--calls 20] [--seconds 5] [--repeat 3]

1. CPU µs per frame pair (gateway process CPU from /proc over the steady window, divided by frames
   echoed; the median of ``--repeat`` runs) — what capacity depends on, noisy on a busy box;
2. Python function calls per frame pair from a cProfile of the gateway (setup included, amortised
   over the run) — load-independent, so a change can be judged on a noisy machine.

Uses benchmarks/phone_calls.py's machinery (external echo agent process, epoll load generator of
simulated Twilio calls). "calls per core" = 1 s / (50 frame pairs per call-second × µs per pair).
"""
from __future__ import annotations

import argparse
import glob
import os
import pathlib
import pstats
import statistics
import subprocess
import sys
import tempfile

from benchmarks import phone_calls as pc
from benchmarks.ws_transport import _free_port, _wait_port


def _with_agent(fn):
    agent_port = _free_port()
    agent = subprocess.Popen([sys.executable, "-m", "benchmarks.phone_calls", "--serve", "agent",
                              "--port", str(agent_port)], cwd=pc.ROOT)
    try:
        _wait_port(agent_port, agent)
        return fn(agent_port)
    finally:
        agent.terminate()
        agent.wait(5)


def _split_ticks(pid: int, seen: list) -> int:
    """phone_calls' utime + stime reader, also keeping the kernel's share (stime) aside."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    seen.append((int(fields[11]), int(fields[12])))
    return int(fields[11]) + int(fields[12])


def cpu_per_pair(calls: int, seconds: float, repeat: int) -> tuple[list[float], list[float]]:
    """(µs per frame pair, kernel share of it) for each run."""
    def run(agent_port):
        out, kernel = [], []
        reader = pc._cpu_ticks
        for _ in range(repeat):
            seen: list = []
            pc._cpu_ticks = lambda pid: _split_ticks(pid, seen)
            try:
                r = pc.measure(pc.SERVERS[0], calls, seconds, agent_port)
            finally:
                pc._cpu_ticks = reader
            (u0, s0), (u1, s1) = seen[0], seen[-1]
            out.append(r["cpu_us_per_frame"])
            kernel.append(round((s1 - s0) / max(1, (u1 - u0) + (s1 - s0)), 2))
        return out, kernel
    return _with_agent(run)


def calls_per_pair(calls: int, seconds: float) -> tuple[float, list]:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CONVERSE_BENCH_PROFILE"] = f"{tmp}/gw"
        try:
            r = _with_agent(lambda port: pc.measure(pc.SERVERS[0], calls, seconds, port))
        finally:
            del os.environ["CONVERSE_BENCH_PROFILE"]
        stats = pstats.Stats(*glob.glob(f"{tmp}/gw.*"))
    pairs = r["frames_echoed"]
    top = sorted(stats.stats.items(), key=lambda kv: -kv[1][1])[:25]
    rows = [(round(v[1] / pairs, 2), f"{k[0].split('/')[-1]}:{k[1]}({k[2]})") for k, v in top]
    return stats.total_calls / pairs, rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--top", action="store_true", help="print the most-called functions")
    args = ap.parse_args(argv)
    per_pair, rows = calls_per_pair(args.calls, args.seconds)
    print(f"python calls per frame pair: {per_pair:.0f}")
    if args.top:
        for n, name in rows:
            print(f"  {n:6.2f}  {name}")
    cpu, kernel = cpu_per_pair(args.calls, args.seconds, args.repeat)
    med = statistics.median(cpu)
    print(f"CPU us per frame pair: median {med:.0f} of {cpu} (load {os.getloadavg()[0]:.1f})"
          f" => ~{1e6 / (50 * med):.0f} calls per core; kernel (system time) share {kernel}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
