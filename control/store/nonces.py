"""Webhook nonces seen recently, shared by every control node through the store (migration 4).

Plivo signs each webhook with a fresh random nonce (``X-Plivo-Signature-V3-Nonce``); the same nonce
again within the window is a replayed request. One process's memory is not enough: behind a load
balancer the replay reaches another node, so the window is the ``webhook_nonces`` table every node
shares. :func:`claim_nonce` is one atomic statement (the primary key decides between two nodes
claiming the same nonce at once), then prunes a bounded batch of expired rows.

Times are wall-clock epoch milliseconds (:func:`now_ms`), like the messaging leases: the nodes share
no monotonic clock. A few seconds of skew between nodes only shifts the edge of the window.
"""
from __future__ import annotations

import time

from control.store.db import Tx

MAX_NONCE_CHARS = 256      # Plivo's are ~20 digits; anything longer is refused before the database
PRUNE_BATCH = 100          # expired rows deleted per claim: bounded work, yet drains any backlog


def now_ms() -> int:
    return int(time.time() * 1000)


def acceptable(nonce: str) -> bool:
    """A nonce worth looking up: non-empty, bounded, printable (no NUL, which PostgreSQL text
    cannot hold)."""
    return 0 < len(nonce) <= MAX_NONCE_CHARS and nonce.isprintable()


def claim_nonce(tx: Tx, provider: str, nonce: str, now: int, window_ms: int) -> bool:
    """Record ``nonce`` as seen at ``now`` (epoch ms); True when it is fresh (never seen, or last
    seen ``window_ms`` or more ago), False for a replay within the window or an unacceptable
    nonce. A replay does not move the time the nonce was first seen."""
    if window_ms <= 0:
        raise ValueError("window_ms must be positive")
    if not acceptable(nonce):
        return False
    cutoff = now - window_ms
    # PostgreSQL: a second claim of the same nonce waits for the first's commit, then sees its
    # row (seen_at_ms = now, not expired) and updates nothing. SQLite: BEGIN IMMEDIATE
    # serializes writers. Either way exactly one claim counts a row.
    fresh = tx.rowcount(
        "INSERT INTO webhook_nonces (provider, nonce, seen_at_ms) VALUES (?, ?, ?) "
        "ON CONFLICT (provider, nonce) DO UPDATE SET seen_at_ms = excluded.seen_at_ms "
        "WHERE webhook_nonces.seen_at_ms <= ?", (provider, nonce, now, cutoff)) == 1
    prune(tx, cutoff)
    return fresh


def prune(tx: Tx, cutoff: int, limit: int = PRUNE_BATCH) -> int:
    """Delete up to ``limit`` rows seen at or before ``cutoff`` (oldest first); return how many.
    On PostgreSQL rows another transaction holds are skipped, not waited for: pruning after the
    claim's own insert therefore never waits on anyone, and cannot deadlock with other claims."""
    if tx.dialect == "postgres":
        return tx.rowcount(
            "DELETE FROM webhook_nonces WHERE (provider, nonce) IN ("
            "SELECT provider, nonce FROM webhook_nonces WHERE seen_at_ms <= ? "
            "ORDER BY seen_at_ms LIMIT ? FOR UPDATE SKIP LOCKED)", (cutoff, limit))
    return tx.rowcount(
        "DELETE FROM webhook_nonces WHERE rowid IN ("
        "SELECT rowid FROM webhook_nonces WHERE seen_at_ms <= ? ORDER BY seen_at_ms LIMIT ?)",
        (cutoff, limit))

