"""Recent sessions for the Activity page: the smallest persistence that lets the console show them.

Nothing else stores finished sessions yet (the gateway logs ``stats.summary()`` and keeps
Prometheus totals), so this module owns one table, ``console_sessions``, created on first use
(``CREATE TABLE IF NOT EXISTS``: portable SQL, no entry in the shared migration list while other
work is appending to it). :func:`attach` hooks a ``GatewayServer`` in the same process (``converse
up``) so every finished session is recorded (the newest :data:`KEEP` rows are kept) and live
sessions are counted per channel.
"""
from __future__ import annotations

import collections
import datetime
import logging
import secrets
import time
import weakref
from typing import Any

import msgspec
import trio

log = logging.getLogger("converse.console")

KEEP = 2000
RECORD_DEADLINE_S = 5.0
_ready: "weakref.WeakSet[Any]" = weakref.WeakSet()

_DDL = [
    """CREATE TABLE IF NOT EXISTS console_sessions (
        id TEXT PRIMARY KEY,
        channel_id TEXT,
        kind TEXT NOT NULL,
        started_at TEXT NOT NULL,
        duration_s REAL NOT NULL,
        frames_in BIGINT NOT NULL,
        frames_out BIGINT NOT NULL,
        dropped BIGINT NOT NULL,
        late_frames BIGINT NOT NULL,
        p50_ms REAL,
        p99_ms REAL,
        end_reason TEXT NOT NULL DEFAULT '')""",
    "CREATE INDEX IF NOT EXISTS console_sessions_started ON console_sessions(started_at)",
]


class SessionRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    channel_id: str | None
    kind: str
    started_at: str          # ISO 8601 UTC
    duration_s: float
    frames_in: int
    frames_out: int
    dropped: int
    late_frames: int
    p50_ms: float | None
    p99_ms: float | None
    end_reason: str = ""


def _ensure(tx) -> None:
    for sql in _DDL:
        tx.execute(sql)


async def ensure(store) -> None:
    if store not in _ready:
        await store.run(_ensure)
        _ready.add(store)


def insert(tx, rec: SessionRecord) -> None:
    cols = msgspec.structs.asdict(rec)
    tx.execute(f"INSERT INTO console_sessions ({', '.join(cols)}) VALUES "
               f"({', '.join('?' * len(cols))})", list(cols.values()))
    # Bounded: keep the newest KEEP rows.
    tx.execute("DELETE FROM console_sessions WHERE id IN (SELECT id FROM console_sessions "
               "ORDER BY started_at DESC LIMIT -1 OFFSET ?)" if tx.dialect == "sqlite" else
               "DELETE FROM console_sessions WHERE id IN (SELECT id FROM console_sessions "
               "ORDER BY started_at DESC OFFSET ?)", [KEEP])


def recent(tx, channel_id: str | None = None, limit: int = 100) -> list[SessionRecord]:
    if channel_id:
        rows = tx.execute("SELECT * FROM console_sessions WHERE channel_id = ? "
                          "ORDER BY started_at DESC LIMIT ?", [channel_id, limit])
    else:
        rows = tx.execute("SELECT * FROM console_sessions ORDER BY started_at DESC LIMIT ?",
                          [limit])
    return [msgspec.convert(r, SessionRecord) for r in rows]


def from_stats(session_id: str, channel_id: str | None, started_unix: float, duration_s: float,
               stats) -> SessionRecord:
    """A record from a gateway ``SessionStats`` (``summary()`` is its stable public shape)."""
    s = stats.summary()
    lat = s.get("added_latency_ms") or {}
    started = datetime.datetime.fromtimestamp(started_unix, datetime.timezone.utc)
    return SessionRecord(
        id=session_id or "s_" + secrets.token_hex(6), channel_id=channel_id,
        kind=getattr(stats, "kind", "web"),
        started_at=started.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        duration_s=round(duration_s, 3), frames_in=s["frames_in"], frames_out=s["frames_out"],
        dropped=s["dropped_in"] + s["dropped_out"], late_frames=s["late_frames"],
        p50_ms=lat.get("p50"), p99_ms=lat.get("p99"), end_reason=s.get("end_reason") or "")


async def record(store, rec: SessionRecord) -> None:
    await ensure(store)
    await store.run(insert, rec)


# Live sessions per channel id, counted by attached gateways in this process (``converse up``);
# None until one is attached: a control plane serving alone cannot know, and says "—".
_live: collections.Counter | None = None


def live_counts() -> collections.Counter | None:
    return _live


def attach(gateway, store) -> None:
    """Record every session ``gateway`` (a GatewayServer) finishes into ``store``, and count its
    live sessions per channel for the Channels page. Recording is best effort and bounded: a slow
    or failing database never delays or breaks a session's end."""
    global _live
    if _live is None:
        _live = collections.Counter()
    live = _live
    run_session = gateway.run_session

    async def recording_run_session(session):
        started, t0 = time.time(), trio.current_time()
        channel_id = getattr(getattr(session, "start", None), "channel_id", None)
        live[channel_id] += 1
        try:
            return await run_session(session)
        finally:
            live[channel_id] -= 1
            if live[channel_id] <= 0:
                del live[channel_id]
            rec = from_stats(session.id, channel_id, started, trio.current_time() - t0,
                             session.stats)
            with trio.move_on_after(RECORD_DEADLINE_S) as scope:
                scope.shield = True
                try:
                    await record(store, rec)
                except Exception as exc:       # the store's errors must not end a call badly
                    log.warning("could not record session %s: %s", rec.id, type(exc).__name__)

    gateway.run_session = recording_run_session


# ---------------------------------------------------------------------------- presentation
def view(rec: SessionRecord) -> dict:
    d = msgspec.structs.asdict(rec)
    d["started"] = rec.started_at.replace("T", " ")[:19]
    m, s = divmod(int(round(rec.duration_s)), 60)
    d["duration"] = f"{m}:{s:02d}"
    return d


def latency_chart(rows: list[SessionRecord], width: int = 640, height: int = 160) -> dict:
    """Geometry for an inline SVG: p50 and p99 polylines, oldest session on the left."""
    pts = [r for r in reversed(rows) if r.p50_ms is not None and r.p99_ms is not None]
    if not pts:
        return {"empty": True, "width": width, "height": height}
    pad_l, pad_r, pad_t, pad_b = 44, 8, 10, 22
    top = max(max(r.p99_ms for r in pts), 1.0) * 1.1
    n = len(pts)

    def xy(i: int, v: float) -> str:
        x = pad_l + (i * (width - pad_l - pad_r) / max(n - 1, 1))
        y = pad_t + (1 - v / top) * (height - pad_t - pad_b)
        return f"{x:.1f},{y:.1f}"

    ticks = [round(top * f, 1) for f in (0, 0.5, 1)]
    return {
        "empty": False, "width": width, "height": height, "n": n,
        "p50": " ".join(xy(i, r.p50_ms) for i, r in enumerate(pts)),
        "p99": " ".join(xy(i, r.p99_ms) for i, r in enumerate(pts)),
        "ticks": [{"label": t, "y": round(pad_t + (1 - t / top) * (height - pad_t - pad_b), 1)}
                  for t in ticks],
        "x0": pad_l, "x1": width - pad_r, "base": height - pad_b,
        "max_p99": max(r.p99_ms for r in pts),
    }
