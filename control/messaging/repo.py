"""Repositories for conversations and messages (inbox and outbox share one table).

Plain synchronous functions over one open transaction (:class:`control.store.Tx`), like
:mod:`control.store.repo`. Every state change is a compare-and-set on the row's current status
(``UPDATE ... WHERE status = ?``) so two workers, even on two control nodes, cannot both move a
message: the loser sees ``False`` and its transaction rolls back or skips.

Message states
--------------
inbound:  ``received`` -> ``processed`` | ``skipped`` (channel not in service) | ``failed``
outbound: ``pending`` -> ``sending`` -> ``sent`` | ``dead``; ``sending`` -> ``pending`` (retry)
Outbound ``delivery`` follows the provider's status callbacks (sent < delivered < read; failed
only over sent) and never goes backwards.
"""
from __future__ import annotations

import secrets
import time

import msgspec

from control.store.db import Tx
from control.store.repo import now_iso

INBOUND, OUTBOUND = "inbound", "outbound"
# Outbound states in which a message is still the outbox's business.
OPEN_OUTBOUND = ("pending", "sending")
# Delivery ranks: a later status never lowers it (Meta/Twilio callbacks arrive out of order).
DELIVERY_RANK = {"queued": 0, "accepted": 0, "sending": 0, "sent": 1, "failed": 2,
                 "undelivered": 2, "delivered": 3, "read": 4, "played": 4}


def now_ms() -> int:
    return int(time.time() * 1000)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


class Conversation(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    channel_id: str
    remote: str
    target_state: dict = {}
    lease_owner: str | None = None
    lease_until_ms: int = 0
    created_at: str = ""
    updated_at: str = ""


class Message(msgspec.Struct, frozen=True, kw_only=True):
    seq: int = 0
    id: str
    channel_id: str
    conversation_id: str
    direction: str
    kind: str = "text"
    text: str | None = None
    status: str
    provider_id: str | None = None
    idempotency_key: str | None = None
    reply_to: str | None = None
    delivery: str | None = None
    attempts: int = 0
    next_attempt_ms: int = 0
    lease_until_ms: int = 0
    last_error: str = ""
    created_at: str = ""
    updated_at: str = ""


def _conversation(rec: dict | None) -> Conversation | None:
    if rec is None:
        return None
    rec = dict(rec)
    rec["target_state"] = msgspec.json.decode(rec["target_state"] or "{}")
    return msgspec.convert(rec, Conversation)


def _message(rec: dict | None) -> Message | None:
    return None if rec is None else msgspec.convert(dict(rec), Message)


# ------------------------------------------------------------------------------ conversations
def conversation_for(tx: Tx, channel_id: str, remote: str) -> Conversation:
    """The conversation with ``remote`` on ``channel_id``, created on first contact."""
    now = now_iso()
    tx.execute("INSERT INTO conversations (id, channel_id, remote, created_at, updated_at) "
               "VALUES (?, ?, ?, ?, ?) ON CONFLICT (channel_id, remote) DO NOTHING",
               (new_id("cv"), channel_id, remote, now, now))
    return _conversation(tx.one("SELECT * FROM conversations WHERE channel_id = ? AND remote = ?",
                                (channel_id, remote)))


def get_conversation(tx: Tx, conversation_id: str) -> Conversation | None:
    return _conversation(tx.one("SELECT * FROM conversations WHERE id = ?", (conversation_id,)))


def take_lease(tx: Tx, conversation_id: str, owner: str, until_ms: int, now: int) -> bool:
    """Lease a conversation for ``owner`` (or extend its own lease): one worker at a time per
    conversation, across processes. An expired lease (a crashed node) can be taken over."""
    return tx.rowcount(
        "UPDATE conversations SET lease_owner = ?, lease_until_ms = ? WHERE id = ? "
        "AND (lease_owner IS NULL OR lease_owner = ? OR lease_until_ms < ?)",
        (owner, until_ms, conversation_id, owner, now)) == 1


def release_lease(tx: Tx, conversation_id: str, owner: str) -> None:
    tx.execute("UPDATE conversations SET lease_owner = NULL, lease_until_ms = 0 "
               "WHERE id = ? AND lease_owner = ?", (conversation_id, owner))


def holds_lease(tx: Tx, conversation_id: str, owner: str) -> bool:
    row = tx.one("SELECT lease_owner FROM conversations WHERE id = ?", (conversation_id,))
    return row is not None and row["lease_owner"] == owner


def set_target_state(tx: Tx, conversation_id: str, state: dict) -> None:
    tx.execute("UPDATE conversations SET target_state = ?, updated_at = ? WHERE id = ?",
               (msgspec.json.encode(state).decode(), now_iso(), conversation_id))


# ---------------------------------------------------------------------------------- inbound
def insert_inbound(tx: Tx, *, channel_id: str, conversation_id: str, provider_id: str,
                   kind: str, text: str | None, status: str = "received") -> bool:
    """Store an inbound message; False when ``provider_id`` was seen before (a redelivery)."""
    now = now_iso()
    return tx.rowcount(
        "INSERT INTO messages (id, channel_id, conversation_id, direction, kind, text, status, "
        "provider_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (channel_id, direction, provider_id) DO NOTHING",
        (new_id("msg"), channel_id, conversation_id, INBOUND, kind, text, status, provider_id,
         now, now)) == 1


def conversations_with_inbox(tx: Tx, now: int, limit: int) -> list[str]:
    """Conversations that have unprocessed inbound messages and no live lease elsewhere."""
    rows = tx.execute(
        "SELECT DISTINCT m.conversation_id AS id FROM messages m JOIN conversations c "
        "ON c.id = m.conversation_id WHERE m.direction = ? AND m.status = 'received' "
        "AND (c.lease_owner IS NULL OR c.lease_until_ms < ?) LIMIT ?", (INBOUND, now, limit))
    return [r["id"] for r in rows]


def next_inbound(tx: Tx, conversation_id: str) -> Message | None:
    """The oldest unprocessed inbound message of a conversation (strict arrival order)."""
    return _message(tx.one(
        "SELECT * FROM messages WHERE conversation_id = ? AND direction = ? "
        "AND status = 'received' "
        "ORDER BY seq LIMIT 1", (conversation_id, INBOUND)))


def history(tx: Tx, conversation_id: str, before_seq: int, limit: int = 20) -> list[Message]:
    """The last ``limit`` messages before ``before_seq``, oldest first (context for the agent)."""
    rows = tx.execute(
        "SELECT * FROM messages WHERE conversation_id = ? AND seq < ? AND kind = 'text' "
        "AND status NOT IN ('skipped', 'dead') ORDER BY seq DESC LIMIT ?",
        (conversation_id, before_seq, limit))
    return [_message(r) for r in reversed(rows)]


def finish_inbound(tx: Tx, message_id: str, status: str, error: str = "") -> bool:
    """``received`` -> ``status`` (processed/skipped/failed); False if someone else did it."""
    return tx.rowcount("UPDATE messages SET status = ?, last_error = ?, updated_at = ? "
                       "WHERE id = ? AND status = 'received'",
                       (status, error, now_iso(), message_id)) == 1


def count_attempt(tx: Tx, message_id: str, error: str) -> int:
    tx.execute("UPDATE messages SET attempts = attempts + 1, last_error = ?, updated_at = ? "
               "WHERE id = ?", (error, now_iso(), message_id))
    row = tx.one("SELECT attempts FROM messages WHERE id = ?", (message_id,))
    return int(row["attempts"]) if row else 0


def skip_received(tx: Tx, channel_id: str, reason: str) -> int:
    """Mark every unprocessed inbound message of a channel skipped (it is not in service)."""
    return tx.rowcount("UPDATE messages SET status = 'skipped', last_error = ?, updated_at = ? "
                       "WHERE channel_id = ? AND direction = ? AND status = 'received'",
                       (reason, now_iso(), channel_id, INBOUND))


# --------------------------------------------------------------------------------- outbound
def insert_outbound(tx: Tx, *, channel_id: str, conversation_id: str, text: str,
                    idempotency_key: str, reply_to: str | None) -> str:
    now = now_iso()
    mid = new_id("msg")
    tx.execute(
        "INSERT INTO messages (id, channel_id, conversation_id, direction, kind, text, status, "
        "idempotency_key, reply_to, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, 'text', ?, 'pending', ?, ?, ?, ?)",
        (mid, channel_id, conversation_id, OUTBOUND, text, idempotency_key, reply_to, now, now))
    return mid


def open_outbound(tx: Tx, limit: int) -> list[Message]:
    """Outbound messages still to send or confirm, oldest first."""
    rows = tx.execute("SELECT * FROM messages WHERE direction = ? AND status IN (?, ?) "
                      "ORDER BY seq LIMIT ?", (OUTBOUND, *OPEN_OUTBOUND, limit))
    return [_message(r) for r in rows]


def get_message(tx: Tx, message_id: str) -> Message | None:
    return _message(tx.one("SELECT * FROM messages WHERE id = ?", (message_id,)))


def claim_send(tx: Tx, message_id: str, now: int, lease_until: int) -> bool:
    """``pending`` (due) -> ``sending`` with a lease: the attempt is ours until ``lease_until``."""
    return tx.rowcount(
        "UPDATE messages SET status = 'sending', attempts = attempts + 1, lease_until_ms = ?, "
        "updated_at = ? WHERE id = ? AND status = 'pending' AND next_attempt_ms <= ?",
        (lease_until, now_iso(), message_id, now)) == 1


def claim_reconcile(tx: Tx, message_id: str, now: int, lease_until: int) -> bool:
    """Take over a ``sending`` message whose lease expired (its sender crashed or hung)."""
    return tx.rowcount(
        "UPDATE messages SET lease_until_ms = ?, updated_at = ? "
        "WHERE id = ? AND status = 'sending' AND lease_until_ms < ?",
        (lease_until, now_iso(), message_id, now)) == 1


def mark_sent(tx: Tx, message_id: str, provider_id: str) -> bool:
    """``sending`` (or a dead "unconfirmed" send a status callback proves) -> ``sent``."""
    return tx.rowcount(
        "UPDATE messages SET status = 'sent', provider_id = ?, lease_until_ms = 0, "
        "delivery = COALESCE(delivery, 'sent'), updated_at = ? WHERE id = ? "
        "AND status IN ('sending', 'dead')", (provider_id, now_iso(), message_id)) == 1


def defer_reconcile(tx: Tx, message_id: str, until_ms: int, error: str) -> bool:
    """Outcome unknown: keep it ``sending`` until ``until_ms`` (the request may still be in flight
    at the provider), then the lease expiry brings it to reconciliation."""
    return tx.rowcount("UPDATE messages SET lease_until_ms = ?, last_error = ?, updated_at = ? "
                       "WHERE id = ? AND status = 'sending'",
                       (until_ms, error, now_iso(), message_id)) == 1


def retry_later(tx: Tx, message_id: str, at_ms: int, error: str) -> bool:
    return tx.rowcount(
        "UPDATE messages SET status = 'pending', next_attempt_ms = ?, lease_until_ms = 0, "
        "last_error = ?, updated_at = ? WHERE id = ? AND status = 'sending'",
        (at_ms, error, now_iso(), message_id)) == 1


def mark_dead(tx: Tx, message_id: str, error: str) -> bool:
    return tx.rowcount(
        "UPDATE messages SET status = 'dead', lease_until_ms = 0, last_error = ?, updated_at = ? "
        "WHERE id = ? AND status IN ('pending', 'sending')",
        (error, now_iso(), message_id)) == 1


def requeue_dead(tx: Tx, channel_id: str, message_id: str) -> bool:
    """An operator's retry of a dead letter: back to ``pending`` with fresh attempts."""
    return tx.rowcount(
        "UPDATE messages SET status = 'pending', attempts = 0, next_attempt_ms = 0, "
        "lease_until_ms = 0, last_error = '', updated_at = ? WHERE id = ? AND channel_id = ? "
        "AND direction = ? AND status = 'dead'",
        (now_iso(), message_id, channel_id, OUTBOUND)) == 1


def known_provider_ids(tx: Tx, channel_id: str, ids: list[str]) -> set[str]:
    """Which of ``ids`` are already recorded on outbound messages of the channel."""
    if not ids:
        return set()
    marks = ", ".join("?" for _ in ids)
    rows = tx.execute(f"SELECT provider_id FROM messages WHERE channel_id = ? AND direction = ? "
                      f"AND provider_id IN ({marks})", (channel_id, OUTBOUND, *ids))
    return {r["provider_id"] for r in rows}


def apply_delivery(tx: Tx, channel_id: str, provider_id: str, status: str, *,
                   idempotency_key: str | None = None, error: str = "") -> str | None:
    """Record a provider status callback on the outbound message it names (by provider id, else
    by our idempotency key echoed back). Returns the delivery now stored, None if unknown."""
    rank = DELIVERY_RANK.get(status)
    if rank is None:
        return None
    rec = tx.one("SELECT * FROM messages WHERE channel_id = ? AND direction = ? "
                 "AND provider_id = ?",
                 (channel_id, OUTBOUND, provider_id))
    if rec is None and idempotency_key:
        rec = tx.one("SELECT * FROM messages WHERE channel_id = ? AND direction = ? "
                     "AND idempotency_key = ?", (channel_id, OUTBOUND, idempotency_key))
        if rec is not None and rec["provider_id"] is None:
            # The provider has it: a send whose answer we lost (crash, timeout). Adopt its id.
            mark_sent(tx, rec["id"], provider_id)
    if rec is None:
        return None
    current = rec["delivery"]
    if current is not None and DELIVERY_RANK.get(current, 0) >= rank:
        return current
    tx.execute("UPDATE messages SET delivery = ?, last_error = CASE WHEN ? <> '' THEN ? "
               "ELSE last_error END, updated_at = ? WHERE id = ?",
               (status, error, error, now_iso(), rec["id"]))
    return status


# ------------------------------------------------------------------------------------- API
def list_messages(tx: Tx, channel_id: str, *, direction: str | None = None,
                  status: str | None = None, conversation_id: str | None = None,
                  before_seq: int | None = None, limit: int = 100,
                  message_id: str | None = None) -> list[dict]:
    where, params = ["m.channel_id = ?"], [channel_id]
    for col, value in (("m.direction", direction), ("m.status", status),
                       ("m.conversation_id", conversation_id), ("m.id", message_id)):
        if value is not None:
            where.append(f"{col} = ?")
            params.append(value)
    if before_seq is not None:
        where.append("m.seq < ?")
        params.append(before_seq)
    return tx.execute(
        "SELECT m.*, c.remote FROM messages m JOIN conversations c ON c.id = m.conversation_id "
        f"WHERE {' AND '.join(where)} ORDER BY m.seq DESC LIMIT ?", [*params, limit])
