"""Repositories: plain synchronous functions over one open transaction (:class:`~control.store.db.Tx`).

They know SQL and row shapes, nothing about HTTP or providers. Rows come back as frozen msgspec
Structs; JSON columns are decoded. Every function that changes configuration the media plane reads
(channels, agents, flows) bumps ``config_version`` in the same transaction.
"""
from __future__ import annotations

import datetime

import msgspec

from control.store.db import Tx
from control.store.notify import CONFIG_CHANNEL


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


class ChannelRow(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    type: str
    provider: str | None = None
    credentials: str | None = None            # ciphertext (control.secrets), never plaintext
    credential_fields: list[str] = []         # the names only, for the masked view
    phone_number: str | None = None
    phone_number_id: str | None = None
    agent_id: str | None = None
    flow_id: str | None = None
    allowed_origins: list[str] = []
    status: str = "setup"
    status_detail: str = ""
    webhook_verified_at: str | None = None
    media: dict = {}
    media_key_sha256: str | None = None
    version: int = 1
    created_at: str = ""
    updated_at: str = ""


class AgentRow(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    kind: str
    config: dict = {}                         # never holds headers (control.store.agent_secrets)
    secret_config: str | None = None          # ciphertext of the secret part (headers), or None
    created_at: str = ""
    updated_at: str = ""


class FlowRow(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    definition: dict = {}
    created_at: str = ""
    updated_at: str = ""


class ApiKeyRow(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    prefix: str
    key_sha256: str
    created_at: str
    revoked_at: str | None = None


_JSON_COLUMNS = {
    "channels": ("credential_fields", "allowed_origins", "media"),
    "agents": ("config",),
    "flows": ("definition",),
    "api_keys": (),
}
_ROW_TYPES = {"channels": ChannelRow, "agents": AgentRow, "flows": FlowRow, "api_keys": ApiKeyRow}


def _to_row(table: str, record: dict | None):
    if record is None:
        return None
    record = dict(record)
    for col in _JSON_COLUMNS[table]:
        if record.get(col) is not None:
            record[col] = msgspec.json.decode(record[col])
    return msgspec.convert(record, _ROW_TYPES[table])


def _to_columns(table: str, row) -> dict:
    cols = msgspec.structs.asdict(row)
    for col in _JSON_COLUMNS[table]:
        cols[col] = msgspec.json.encode(cols[col]).decode()
    return cols


def _insert(tx: Tx, table: str, row) -> None:
    cols = _to_columns(table, row)
    names = ", ".join(cols)
    marks = ", ".join("?" for _ in cols)
    tx.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", list(cols.values()))


def _get(tx: Tx, table: str, row_id: str, *, lock: bool = False):
    rec = tx.lock_row(table, row_id) if lock else tx.one(f"SELECT * FROM {table} WHERE id = ?", (row_id,))
    return _to_row(table, rec)


# ---------------------------------------------------------------------------- config version
def bump_config_version(tx: Tx) -> None:
    if tx.dialect != "postgres":
        tx.execute("UPDATE config_version SET version = version + 1 WHERE id = 1")
        return
    # Other nodes LISTEN for this (control.store.notify); NOTIFY is transactional, so they hear
    # of the new version when this transaction commits and never of one that rolled back.
    row = tx.one("UPDATE config_version SET version = version + 1 WHERE id = 1 RETURNING version")
    if row is not None:
        tx.execute("SELECT pg_notify(?, ?)", (CONFIG_CHANNEL, str(row["version"])))


def config_version(tx: Tx) -> int:
    row = tx.one("SELECT version FROM config_version WHERE id = 1")
    return int(row["version"]) if row else 0


# ---------------------------------------------------------------------------------- channels
def insert_channel(tx: Tx, row: ChannelRow) -> None:
    _insert(tx, "channels", row)
    bump_config_version(tx)


def get_channel(tx: Tx, channel_id: str, *, lock: bool = False) -> ChannelRow | None:
    return _get(tx, "channels", channel_id, lock=lock)


def list_channels(tx: Tx, *, status: str | None = None, type: str | None = None) -> list[ChannelRow]:
    where, params = [], []
    if status:
        where.append("status = ?")
        params.append(status)
    if type:
        where.append("type = ?")
        params.append(type)
    sql = "SELECT * FROM channels" + (" WHERE " + " AND ".join(where) if where else "")
    return [_to_row("channels", r) for r in tx.execute(sql + " ORDER BY created_at, id", params)]


def update_channel(tx: Tx, row: ChannelRow) -> ChannelRow | None:
    """Write the whole row if nobody changed it since ``row.version`` was read (compare-and-set);
    return the stored row (version + 1), or None when the row changed or vanished meanwhile."""
    cols = _to_columns("channels", row)
    for fixed in ("id", "created_at", "version"):
        cols.pop(fixed)
    cols["updated_at"] = now_iso()
    sets = ", ".join(f"{k} = ?" for k in cols)
    n = tx.rowcount(f"UPDATE channels SET {sets}, version = version + 1 WHERE id = ? AND version = ?",
                    [*cols.values(), row.id, row.version])
    if n != 1:
        return None
    bump_config_version(tx)
    return get_channel(tx, row.id)


def delete_channel(tx: Tx, channel_id: str) -> bool:
    n = tx.rowcount("DELETE FROM channels WHERE id = ?", (channel_id,))
    if n:
        bump_config_version(tx)
    return n == 1


def channels_using(tx: Tx, kind: str, target_id: str) -> list[str]:
    col = {"agent": "agent_id", "flow": "flow_id"}[kind]
    return [r["id"] for r in tx.execute(f"SELECT id FROM channels WHERE {col} = ? ORDER BY id", (target_id,))]


def all_channel_credentials(tx: Tx) -> list[tuple[str, str]]:
    return [(r["id"], r["credentials"]) for r in
            tx.execute("SELECT id, credentials FROM channels WHERE credentials IS NOT NULL ORDER BY id")]


def set_channel_credentials(tx: Tx, channel_id: str, ciphertext: str) -> None:
    # Re-encryption changes no configuration: no version bump, no directory reload.
    tx.execute("UPDATE channels SET credentials = ? WHERE id = ?", (ciphertext, channel_id))


# ------------------------------------------------------------------------------ agents, flows
def insert_agent(tx: Tx, row: AgentRow) -> None:
    _insert(tx, "agents", row)
    bump_config_version(tx)


def get_agent(tx: Tx, agent_id: str, *, lock: bool = False) -> AgentRow | None:
    return _get(tx, "agents", agent_id, lock=lock)


def list_agents(tx: Tx) -> list[AgentRow]:
    return [_to_row("agents", r) for r in tx.execute("SELECT * FROM agents ORDER BY created_at, id")]


def update_agent(tx: Tx, row: AgentRow) -> AgentRow:
    tx.execute("UPDATE agents SET name = ?, kind = ?, config = ?, secret_config = ?, updated_at = ? "
               "WHERE id = ?", (row.name, row.kind, msgspec.json.encode(row.config).decode(),
                                row.secret_config, now_iso(), row.id))
    bump_config_version(tx)
    return get_agent(tx, row.id)


def all_agent_secrets(tx: Tx) -> list[tuple[str, str]]:
    return [(r["id"], r["secret_config"]) for r in tx.execute(
        "SELECT id, secret_config FROM agents WHERE secret_config IS NOT NULL ORDER BY id")]


def set_agent_secret(tx: Tx, agent_id: str, ciphertext: str | None, *,
                     config: dict | None = None) -> None:
    # Re-encryption (and moving clear headers into the ciphertext) changes no effective
    # configuration: no version bump, no directory reload.
    if config is None:
        tx.execute("UPDATE agents SET secret_config = ? WHERE id = ?", (ciphertext, agent_id))
    else:
        tx.execute("UPDATE agents SET secret_config = ?, config = ? WHERE id = ?",
                   (ciphertext, msgspec.json.encode(config).decode(), agent_id))


def insert_flow(tx: Tx, row: FlowRow) -> None:
    _insert(tx, "flows", row)
    bump_config_version(tx)


def get_flow(tx: Tx, flow_id: str, *, lock: bool = False) -> FlowRow | None:
    return _get(tx, "flows", flow_id, lock=lock)


def list_flows(tx: Tx) -> list[FlowRow]:
    return [_to_row("flows", r) for r in tx.execute("SELECT * FROM flows ORDER BY created_at, id")]


def update_flow(tx: Tx, row: FlowRow) -> FlowRow:
    tx.execute("UPDATE flows SET name = ?, definition = ?, updated_at = ? WHERE id = ?",
               (row.name, msgspec.json.encode(row.definition).decode(), now_iso(), row.id))
    bump_config_version(tx)
    return get_flow(tx, row.id)


def delete_target(tx: Tx, kind: str, target_id: str) -> list[str] | bool:
    """Delete an agent or flow unless a channel still uses it: return the blocking channel ids
    (the row stays), else True when deleted / False when it did not exist."""
    table = {"agent": "agents", "flow": "flows"}[kind]
    if tx.lock_row(table, target_id) is None:
        return False
    users = channels_using(tx, kind, target_id)
    if users:
        return users
    tx.execute(f"DELETE FROM {table} WHERE id = ?", (target_id,))
    bump_config_version(tx)
    return True


# ---------------------------------------------------------------------------------- API keys
def insert_api_key(tx: Tx, row: ApiKeyRow) -> None:
    _insert(tx, "api_keys", row)


def find_api_key(tx: Tx, key_sha256: str) -> ApiKeyRow | None:
    return _to_row("api_keys", tx.one("SELECT * FROM api_keys WHERE key_sha256 = ?", (key_sha256,)))


def list_api_keys(tx: Tx) -> list[ApiKeyRow]:
    return [_to_row("api_keys", r) for r in tx.execute("SELECT * FROM api_keys ORDER BY created_at, id")]


def revoke_api_key(tx: Tx, key_id: str) -> bool:
    return tx.rowcount("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                       (now_iso(), key_id)) == 1
