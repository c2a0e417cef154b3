"""Every limit the media plane enforces, in one place.

``Limits`` is one frozen msgspec Struct with production defaults; tests and operators override single
fields with ``limits.replace(field=value)`` (or ``Limits(**overrides)``). ``HandshakeRateLimiter``
is the per-IP token bucket behind the 429 answer; it takes the time as an argument (no clock inside)
so it can be tested without sleeping.
"""
from __future__ import annotations

import msgspec


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    # WebSocket framing: a message over this closes with 1009 (RELIABILITY 4).
    max_message_bytes: int = 64 * 1024
    # A TCP connection must complete the HTTP upgrade request within this (RELIABILITY 5).
    handshake_timeout_s: float = 5.0
    # Directory lookups and other checks done before answering the upgrade.
    auth_timeout_s: float = 2.0
    # Provider media streams must send `start` within this after the upgrade (1008 otherwise).
    start_timeout_s: float = 10.0
    # A session with no frame from the caller for this long is closed (1000, "idle timeout").
    idle_timeout_s: float = 300.0
    # Pings every interval; a peer silent for two intervals is declared half-open (RELIABILITY 6).
    ping_interval_s: float = 10.0
    # Per-IP handshake token bucket: sustained rate and burst (RELIABILITY 8, answer 429).
    handshake_rate_per_s: float = 20.0
    handshake_burst: int = 50
    # Behind a reverse proxy every connection comes from the proxy: for connections from these
    # addresses the client is the last X-Forwarded-For entry (the one the proxy appended).
    trusted_proxies: tuple[str, ...] = ()
    # Admission control: above this many live sessions new handshakes get 503 (RELIABILITY 10).
    max_sessions: int = 1000
    # A socket write blocked longer than this (2 s of audio) closes the session with 1011 (12).
    write_timeout_s: float = 2.0
    # Kernel send buffer per accepted socket: bounds what a non-reading peer can pin in memory
    # and how long a write can look successful while the peer reads nothing.
    socket_sndbuf: int = 64 * 1024
    # Graceful shutdown: sessions get this long to finish after `end` before they are cancelled.
    drain_timeout_s: float = 5.0
    # Closing handshake: wait this long for the peer's close frame before dropping TCP.
    close_timeout_s: float = 2.0
    # Audio towards the caller is sent at most this far ahead of real time (clear drops <= this).
    pacing_lead_s: float = 0.060
    # Audio queued towards the caller beyond this is dropped oldest-first (counted).
    max_playout_s: float = 60.0
    # Caller -> agent queue (frames/events); full means the agent stalls: drop oldest, count.
    agent_queue: int = 64
    # Agent connectors: connect and per-request deadlines.
    agent_connect_timeout_s: float = 5.0
    agent_request_timeout_s: float = 15.0
    # An external agent that stops reading is given longer than a caller (the inbox drops the
    # oldest audio meanwhile, so the session survives a stall); past this its link is dropped.
    agent_write_timeout_s: float = 15.0

    def replace(self, **changes) -> "Limits":
        return msgspec.structs.replace(self, **changes)


class HandshakeRateLimiter:
    """Token bucket per remote IP. ``allow(ip, now)`` spends one token or says no.

    Memory is bounded: at most ``max_ips`` buckets are kept; when full, buckets that have refilled
    (carry no information any more) are dropped first, then the oldest.
    """

    def __init__(self, rate_per_s: float, burst: int, max_ips: int = 10_000):
        self.rate = float(rate_per_s)
        self.burst = float(burst)
        self.max_ips = max_ips
        self._buckets: dict[str, tuple[float, float]] = {}   # ip -> (tokens, last time)

    def allow(self, ip: str, now: float) -> bool:
        tokens, last = self._buckets.pop(ip, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        ok = tokens >= 1.0
        if ok:
            tokens -= 1.0
        if len(self._buckets) >= self.max_ips:
            self._evict(now)
        self._buckets[ip] = (tokens, now)       # re-insert: dict order = least recently seen first
        return ok

    def _evict(self, now: float) -> None:
        full = [ip for ip, (t, last) in self._buckets.items()
                if t + (now - last) * self.rate >= self.burst]
        for ip in full:
            del self._buckets[ip]
        while len(self._buckets) >= self.max_ips:
            del self._buckets[next(iter(self._buckets))]
