"""Agents' secret configuration (``config.headers``: usually the agent server's API key), encrypted
at rest like provider credentials.

The ``agents`` row keeps the non-secret part of the config in ``config`` and the secret part as
one :class:`~control.secrets.SecretBox` ciphertext in ``secret_config`` (migration 3), bound to
the row by :func:`agent_aad`. Writers :func:`seal` a full config into those two columns; readers that need the
headers (the gateway's directory, the messaging worker, the masked API view) :func:`clear_config`.
Nothing here logs a value.
"""
from __future__ import annotations

from control.secrets import DecryptError, SecretBox
from control.store import repo
from control.store.db import Database, Tx

__all__ = ["SECRET_KEYS", "DecryptError", "agent_aad", "seal", "open_secret", "clear_config",
           "seal_clear_rows", "rotate"]

SECRET_KEYS = ("headers",)      # config keys whose values never reach the database in clear


def agent_aad(agent_id: str) -> bytes:
    return f"agent:{agent_id}".encode()


def seal(box: SecretBox, agent_id: str, config: dict) -> tuple[dict, str | None]:
    """Split a full config into (what is stored in clear, the ciphertext of the rest or None)."""
    public = {k: v for k, v in config.items() if k not in SECRET_KEYS}
    secret = {k: config[k] for k in SECRET_KEYS if config.get(k)}
    return public, (box.encrypt_json(secret, agent_aad(agent_id)) if secret else None)


def open_secret(box: SecretBox, row: repo.AgentRow) -> dict:
    """The decrypted secret part of ``row``'s config ({} when it has none); DecryptError when this
    node's keys cannot read it."""
    if not row.secret_config:
        return {}
    secret = box.decrypt_json(row.secret_config, agent_aad(row.id))
    if not isinstance(secret, dict):
        raise DecryptError("stored agent secret is not an object")
    return secret


def clear_config(box: SecretBox, row: repo.AgentRow) -> dict:
    """The full config, headers included, as the agent connectors need it."""
    return {**row.config, **open_secret(box, row)}


# -------------------------------------------------------------------- upgrade and key rotation
def _rows_with_clear_secrets(tx: Tx) -> list[repo.AgentRow]:
    return [a for a in repo.list_agents(tx)
            if any(a.config.get(k) is not None for k in SECRET_KEYS)]


def _seal_rows(tx: Tx, box: SecretBox) -> int:
    rows = _rows_with_clear_secrets(tx)
    for row in rows:
        full = {**open_secret(box, row), **row.config}    # a clear value is the newer one
        public, ciphertext = seal(box, row.id, full)
        repo.set_agent_secret(tx, row.id, ciphertext, config=public)
    return len(rows)


def seal_clear_rows(db: Database, box: SecretBox) -> int:
    """Encrypt headers still stored in clear (rows written before migration 3, or by a node not
    yet upgraded); return how many rows changed. Idempotent and cheap when there is nothing to
    do: a read transaction, no write lock."""
    with db.transaction(write=False) as tx:
        if not _rows_with_clear_secrets(tx):
            return 0
    with db.transaction() as tx:
        return _seal_rows(tx, box)


def rotate(tx: Tx, old: SecretBox, new: SecretBox) -> int:
    """Re-encrypt every agent secret under ``new`` inside the caller's transaction (the channel
    credentials' rotation); rows already under ``new`` are left alone. Returns rows changed."""
    done = 0
    for agent_id, ciphertext in repo.all_agent_secrets(tx):
        if new.is_current(ciphertext):
            continue
        aad = agent_aad(agent_id)
        repo.set_agent_secret(tx, agent_id, new.encrypt(old.decrypt(ciphertext, aad), aad))
        done += 1
    return done
