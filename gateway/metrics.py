"""Per-session statistics and their Prometheus text exposition.

The gateway serves ``GET /metrics`` on its own WebSocket port (so each worker process and each node
is scraped directly; the control plane stays out of the media path). Counters are cumulative over
finished sessions plus the live ones at scrape time, so a long call shows up before it ends.

Per-frame cost is kept to integer increments and one ``bisect`` into a fixed log-spaced bucket list:
no allocation, bounded memory per session.
"""
from __future__ import annotations

import bisect
import math

# Log-spaced latency buckets from 10 µs to ~10 s (ratio 1.2): 77 upper bounds.
_BOUNDS = [1e-5 * 1.2 ** i for i in range(77)]
# Coarser buckets for the Prometheus histogram (seconds).
PROM_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)


class LatencyHistogram:
    """Fixed-bucket histogram of durations in seconds; quantiles within one bucket (±10 %)."""

    __slots__ = ("counts", "total", "sum")

    def __init__(self):
        self.counts = [0] * (len(_BOUNDS) + 1)
        self.total = 0
        self.sum = 0.0

    def record(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(_BOUNDS, seconds)] += 1
        self.total += 1
        self.sum += seconds

    def record_zero(self) -> None:
        """``record(0.0)`` without the search (the per-frame direct path)."""
        self.counts[0] += 1
        self.total += 1

    def quantile(self, q: float) -> float | None:
        """Upper bound of the bucket holding the q-quantile; None when empty."""
        if not self.total:
            return None
        rank = max(1, math.ceil(q * self.total))
        seen = 0
        for i, n in enumerate(self.counts):
            seen += n
            if seen >= rank:
                return _BOUNDS[i] if i < len(_BOUNDS) else math.inf
        return math.inf

    def merge(self, other: "LatencyHistogram") -> None:
        for i, n in enumerate(other.counts):
            self.counts[i] += n
        self.total += other.total
        self.sum += other.sum

    def cumulative(self, bound: float) -> int:
        """How many samples are <= ``bound`` (to bucket precision)."""
        return sum(self.counts[:bisect.bisect_right(_BOUNDS, bound)])


class SessionStats:
    """What one session counts. Plain attributes: the per-frame path does ``+= 1``."""

    __slots__ = ("frames_in", "frames_out", "events_in", "events_out", "dropped_in",
                 "dropped_out", "late_frames", "cleared_ms", "bad_messages", "added_latency",
                 "lateness", "close_code", "end_reason", "kind", "gaps_in", "late_in",
                 "concealed_frames", "held_out")

    def __init__(self, kind: str = "web"):
        self.kind = kind
        self.frames_in = 0         # audio frames from the caller
        self.frames_out = 0        # audio frames sent to the caller
        self.events_in = 0
        self.events_out = 0
        self.dropped_in = 0        # caller -> agent items dropped (agent stalled), oldest first
        self.dropped_out = 0       # agent -> caller audio frames dropped (playout overflow)
        self.late_frames = 0       # frames sent > 20 ms after their pacing slot
        self.held_out = 0          # times agent audio waited for its pacing slot (ran ahead)
        self.cleared_ms = 0.0      # audio dropped by barge-in
        self.bad_messages = 0
        self.added_latency = LatencyHistogram()   # caller frame read -> agent leg took it
        self.lateness = LatencyHistogram()        # pacing slot -> actually sent
        self.close_code: int | None = None
        self.end_reason = ""
        # phone streams: gaps in the provider's frame numbering, frames arriving late/duplicated,
        # and concealment frames inserted so the agent's timeline stays aligned with the call
        self.gaps_in = 0
        self.late_in = 0
        self.concealed_frames = 0

    def summary(self) -> dict:
        def ms(h, q):
            v = h.quantile(q)
            return None if v is None else round(v * 1000, 3)
        return {
            "frames_in": self.frames_in, "frames_out": self.frames_out,
            "events_in": self.events_in, "events_out": self.events_out,
            "dropped_in": self.dropped_in, "dropped_out": self.dropped_out,
            "late_frames": self.late_frames, "held_out": self.held_out,
            "cleared_ms": round(self.cleared_ms, 1),
            "bad_messages": self.bad_messages,
            "added_latency_ms": {"p50": ms(self.added_latency, 0.5),
                                 "p99": ms(self.added_latency, 0.99)},
            "pacing_lateness_ms": {"p50": ms(self.lateness, 0.5), "p99": ms(self.lateness, 0.99)},
            "gaps_in": self.gaps_in, "late_in": self.late_in,
            "concealed_frames": self.concealed_frames,
            "close_code": self.close_code, "end_reason": self.end_reason,
        }


_COUNTERS = ("frames_in", "frames_out", "events_in", "events_out", "dropped_in", "dropped_out",
             "late_frames", "held_out", "bad_messages", "gaps_in", "late_in", "concealed_frames")


class Registry:
    """Gateway-wide metrics: finished-session totals + live sessions + handshake outcomes."""

    def __init__(self):
        self.live: set[SessionStats] = set()
        self.finished = {name: 0 for name in _COUNTERS}
        self.latency = LatencyHistogram()
        self.sessions_total = 0
        self.handshakes: dict[int, int] = {}        # HTTP status answered -> count
        self.close_codes: dict[int, int] = {}

    def session_started(self, stats: SessionStats) -> None:
        self.live.add(stats)
        self.sessions_total += 1

    def session_ended(self, stats: SessionStats) -> None:
        self.live.discard(stats)
        for name in _COUNTERS:
            self.finished[name] += getattr(stats, name)
        self.latency.merge(stats.added_latency)
        code = stats.close_code or 1000
        self.close_codes[code] = self.close_codes.get(code, 0) + 1

    def handshake(self, status: int) -> None:
        self.handshakes[status] = self.handshakes.get(status, 0) + 1

    def render(self) -> bytes:
        """Prometheus text exposition format 0.0.4."""
        out = []

        def metric(name, kind, help_, samples):
            out.append(f"# HELP converse_{name} {help_}")
            out.append(f"# TYPE converse_{name} {kind}")
            for labels, value in samples:
                out.append(f"converse_{name}{labels} {value}")

        metric("sessions_active", "gauge", "Live sessions.", [("", len(self.live))])
        metric("sessions_total", "counter", "Sessions started.", [("", self.sessions_total)])
        for name in _COUNTERS:
            live = sum(getattr(s, name) for s in self.live)
            metric(f"{name}_total", "counter", f"Session {name.replace('_', ' ')}.",
                   [("", self.finished[name] + live)])
        metric("handshakes_total", "counter", "Upgrade requests answered, by HTTP status.",
               [(f'{{status="{k}"}}', v) for k, v in sorted(self.handshakes.items())])
        metric("session_close_total", "counter", "Sessions ended, by WebSocket close code.",
               [(f'{{code="{k}"}}', v) for k, v in sorted(self.close_codes.items())])
        hist = LatencyHistogram()
        hist.merge(self.latency)
        for s in self.live:
            hist.merge(s.added_latency)
        samples = [(f'{{le="{b}"}}', hist.cumulative(b)) for b in PROM_BUCKETS]
        samples.append(('{le="+Inf"}', hist.total))
        out.append("# HELP converse_added_latency_seconds Caller frame read to agent leg.")
        out.append("# TYPE converse_added_latency_seconds histogram")
        for labels, value in samples:
            out.append(f"converse_added_latency_seconds_bucket{labels} {value}")
        out.append(f"converse_added_latency_seconds_sum {hist.sum}")
        out.append(f"converse_added_latency_seconds_count {hist.total}")
        return ("\n".join(out) + "\n").encode()
