"""Agents' headers (the agent server's API key) are encrypted at rest, like provider credentials:
the row holds ciphertext only, the API masks them, the directory decrypts them for the gateway,
a websocket agent really receives them, rotation re-encrypts them, and rows from before the
encryption are sealed on upgrade."""
from __future__ import annotations

import pathlib

import h11
import pytest
import trio

from control.config import Settings, sqlite_path
from control.secrets import DecryptError, SecretBox, generate_key, mask_value, parse_key
from control.store import (MIGRATIONS, agent_aad, agent_secrets, migrate, open_store, repo,
                           rotate_secrets)
from control.store.db import open_database
from control.store.directory import StoreDirectory
from fixtures_gateway import open_session, receive_json, start_gateway
from gateway import transport
from gateway.limits import Limits

BACKENDS = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
SECRET = "Bearer agent-secret-7f3a9c2e51d4"          # long enough that the mask keeps 4 chars


def _settings(database_url: str, key: bytes | None = None) -> Settings:
    return Settings(database_url=database_url, secret_key=key or parse_key(generate_key()))


def _raw_rows(database_url: str) -> list[dict]:
    db = open_database(database_url)
    try:
        with db.transaction(write=False) as tx:
            return tx.execute("SELECT * FROM agents ORDER BY id")
    finally:
        db.close()


def _raw_bytes(database_url: str) -> bytes:
    """Every byte SQLite keeps for the database (main file and write-ahead log)."""
    path = sqlite_path(database_url)
    return b"".join(p.read_bytes() for p in (path, pathlib.Path(f"{path}-wal")) if p.exists())


def _insert(store, agent_id: str, config: dict, kind: str = "websocket") -> None:
    public, secret = agent_secrets.seal(store.box, agent_id, config)
    now = repo.now_iso()
    store.run_sync(repo.insert_agent, repo.AgentRow(
        id=agent_id, name="ext", kind=kind, config=public, secret_config=secret,
        created_at=now, updated_at=now))


# ------------------------------------------------------------------------------ over the API
def test_api_stores_ciphertext_masks_and_keeps_headers(control_server):
    api = control_server.client()
    config = {"url": "wss://agent.example/ws",
              "headers": {"Authorization": SECRET, "X-Team": "ops"}}
    r = api.post("/api/v1/agents", json={"name": "sealed", "kind": "websocket", "config": config})
    assert r.status_code == 201, r.text
    agent = r.json()
    assert SECRET not in r.text
    assert agent["config"]["headers"] == {"Authorization": mask_value(SECRET), "X-Team": "••••"}

    url = control_server.settings.database_url
    row = next(r for r in _raw_rows(url) if r["id"] == agent["id"])
    assert SECRET not in str(row) and "X-Team" not in row["config"]
    assert row["secret_config"].startswith("v1.")
    if sqlite_path(url):
        assert SECRET.encode() not in _raw_bytes(url)

    # Renaming, reconfiguring without headers, or echoing the masked view back keep the value.
    path = f"/api/v1/agents/{agent['id']}"
    assert api.patch(path, json={"name": "renamed"}).status_code == 200
    r = api.patch(path, json={"config": {"url": "wss://agent.example/v2"}})
    assert r.status_code == 200 and r.json()["config"]["headers"] == agent["config"]["headers"]
    echoed = {**r.json()["config"]["headers"], "X-Team": "dev"}
    r = api.patch(path, json={"config": {"url": "wss://agent.example/v2", "headers": echoed}})
    assert r.status_code == 200 and SECRET not in r.text
    store = open_store(control_server.settings, auto_migrate=False)
    try:
        stored = store.run_sync(repo.get_agent, agent["id"])
        assert agent_secrets.clear_config(store.box, stored)["headers"] == {
            "Authorization": SECRET, "X-Team": "dev"}
    finally:
        store.close()
    assert api.get(path).json()["config"]["headers"]["Authorization"] == mask_value(SECRET)
    assert SECRET not in api.get("/api/v1/agents").text
    # "headers": {} clears them.
    r = api.patch(path, json={"config": {"url": "wss://agent.example/v2", "headers": {}}})
    assert r.status_code == 200 and not r.json()["config"].get("headers")
    assert next(r for r in _raw_rows(url) if r["id"] == agent["id"])["secret_config"] is None
    assert SECRET not in control_server.log_text()


# ------------------------------------------------------------------------ directory, gateway
@BACKENDS
async def test_directory_decrypts_and_the_agent_receives_the_header(database_url, nursery):
    seen: list[str | None] = []

    async def recording_agent(hs):
        seen.append(hs.header("Authorization"))
        agent_ws = await hs.accept()
        await agent_ws.receive()                            # the start message
        await agent_ws.aclose(1000, "done")

    listeners = await transport.open_listeners("127.0.0.1", 0)
    port = listeners[0].socket.getsockname()[1]
    nursery.start_soon(transport.serve, recording_agent, listeners, Limits())

    store = open_store(_settings(database_url))
    try:
        _insert(store, "ag_ext", {"url": f"ws://127.0.0.1:{port}/",
                                  "headers": {"Authorization": SECRET}})
        now = repo.now_iso()
        store.run_sync(repo.insert_channel, repo.ChannelRow(
            id="web-ext", name="w", type="web", status="active", agent_id="ag_ext",
            allowed_origins=["http://localhost:8000"], created_at=now, updated_at=now))
        assert SECRET not in str(_raw_rows(database_url))
        directory = StoreDirectory(store)
        info = await directory.get_agent("ag_ext")
        assert info.config["headers"] == {"Authorization": SECRET}
        server = await start_gateway(nursery, directory)
        ws = await open_session(server, "/ws/agent/ag_ext")
        await receive_json(ws, "end")
        assert seen == [SECRET]
        server.shutdown()
    finally:
        store.close()


async def test_an_undecryptable_row_leaves_other_agents_working(database_url):
    store = open_store(_settings(database_url))
    try:
        _insert(store, "ag_ok", {"url": "ws://127.0.0.1:9/", "headers": {"A": "1"}})
        _insert(store, "ag_bad", {"url": "ws://127.0.0.1:9/", "headers": {"A": "2"}})
        # A ciphertext copied onto another row does not decrypt (the row id is bound in).
        moved = store.run_sync(repo.get_agent, "ag_ok").secret_config
        store.run_sync(repo.set_agent_secret, "ag_bad", moved)
        directory = StoreDirectory(store)
        assert (await directory.get_agent("ag_ok")).config["headers"] == {"A": "1"}
        bad = await directory.get_agent("ag_bad")
        assert "headers" not in bad.config and bad.config["url"] == "ws://127.0.0.1:9/"
    finally:
        store.close()


# ----------------------------------------------------------------------- rotation, migration
@BACKENDS
def test_rotation_re_encrypts_agent_headers(database_url):
    old_key, new_key = parse_key(generate_key()), parse_key(generate_key())
    store = open_store(_settings(database_url, old_key))
    try:
        _insert(store, "ag_1", {"url": "ws://a/", "headers": {"Authorization": SECRET}})
        _insert(store, "ag_2", {"url": "ws://a/"})                   # nothing secret: no ciphertext
        assert rotate_secrets(store.db, store.box, SecretBox(new_key)) == 1
        ciphertext = store.run_sync(repo.get_agent, "ag_1").secret_config
        with pytest.raises(DecryptError):
            SecretBox(old_key).decrypt(ciphertext, agent_aad("ag_1"))
        assert SecretBox(new_key).decrypt_json(ciphertext, agent_aad("ag_1")) == {
            "headers": {"Authorization": SECRET}}
        assert rotate_secrets(store.db, SecretBox(new_key), SecretBox(new_key)) == 0
    finally:
        store.close()


@BACKENDS
def test_upgrade_seals_headers_stored_in_clear(database_url):
    db = open_database(database_url)
    try:
        migrate(db, [m for m in MIGRATIONS if m.version < 3])       # the schema before encryption
        with db.transaction() as tx:
            tx.execute("INSERT INTO agents (id, name, kind, config, created_at, updated_at) "
                       "VALUES (?, ?, ?, ?, ?, ?)",
                       ("ag_old", "old", "http",
                        '{"url": "https://agent.example/", "headers": {"Authorization": "%s"}}'
                        % SECRET, "t", "t"))
    finally:
        db.close()
    key = parse_key(generate_key())
    store = open_store(_settings(database_url, key))
    try:
        [raw] = _raw_rows(database_url)
        assert SECRET not in raw["config"] and "headers" not in raw["config"]
        assert SecretBox(key).decrypt_json(raw["secret_config"], agent_aad("ag_old")) == {
            "headers": {"Authorization": SECRET}}
        row = store.run_sync(repo.get_agent, "ag_old")
        assert agent_secrets.clear_config(store.box, row) == {
            "url": "https://agent.example/", "headers": {"Authorization": SECRET}}
    finally:
        store.close()
    db = open_database(database_url)
    try:
        assert agent_secrets.seal_clear_rows(db, SecretBox(key)) == 0    # nothing left in clear
    finally:
        db.close()


# ------------------------------------------------------------------- messaging (text channels)
async def _header_recording_http_agent(seen: list, task_status=trio.TASK_STATUS_IGNORED):
    """A real HTTP/1.1 text agent on 127.0.0.1 that records each request's Authorization."""
    async def handle(stream):
        conn = h11.Connection(h11.SERVER)
        with trio.move_on_after(10):
            while (event := conn.next_event()) is not h11.PAUSED:
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(65536))
                elif isinstance(event, h11.Request):
                    seen.append(dict(event.headers).get(b"authorization", b"").decode())
                elif isinstance(event, h11.EndOfMessage):
                    break
            reply = b'{"text": "hi"}'
            await stream.send_all(conn.send(h11.Response(status_code=200, headers=[
                (b"content-type", b"application/json"), (b"content-length", b"%d" % len(reply))])))
            await stream.send_all(conn.send(h11.Data(data=reply)) + conn.send(h11.EndOfMessage()))
        await stream.aclose()

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handle, listeners)


async def test_a_text_channel_turn_sends_the_decrypted_header(database_url, nursery):
    from control.messaging.targets import Turn, run_turn

    seen: list[str] = []
    port = await nursery.start(_header_recording_http_agent, seen)
    store = open_store(_settings(database_url))
    try:
        _insert(store, "ag_http", {"url": f"http://127.0.0.1:{port}/chat",
                                   "headers": {"Authorization": SECRET}}, kind="http")
        channel = repo.ChannelRow(id="ch_wa", name="w", type="whatsapp", provider="meta",
                                  agent_id="ag_http")
        turn = Turn(conversation_id="cv_1", channel_id="ch_wa", channel_type="whatsapp",
                    provider="meta", remote="+14155550100", text="hello")
        result = await run_turn(store.read, channel, turn, deadline=30)
        assert result.replies == ["hi"] and seen == [SECRET]
    finally:
        store.close()


def test_converse_secrets_rotate_re_encrypts_agent_headers(tmp_path):
    """The operator's command end to end: key file replaced, agent headers under the new key."""
    import os
    import subprocess
    import sys

    from conftest import ROOT
    from control.secrets import load_key_file

    key_file = tmp_path / "secret.key"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONVERSE_", "DATABASE_URL"))}
    env.update(PYTHONPATH=str(ROOT), DATABASE_URL=f"sqlite:///{tmp_path / 'c.db'}",
               CONVERSE_SECRET_KEY_FILE=str(key_file))
    store = open_store(Settings.from_env(env))
    try:
        _insert(store, "ag_1", {"url": "ws://a/", "headers": {"Authorization": SECRET}})
    finally:
        store.close()
    old_key = load_key_file(key_file, create=False)
    proc = subprocess.run([sys.executable, "-m", "control.cli", "secrets", "rotate"], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "re-encrypted 1 secret" in proc.stdout, proc.stderr
    new_key = load_key_file(key_file, create=False)
    [row] = _raw_rows(env["DATABASE_URL"])
    assert SecretBox(new_key).decrypt_json(row["secret_config"], agent_aad("ag_1")) == {
        "headers": {"Authorization": SECRET}}
    with pytest.raises(DecryptError):
        SecretBox(old_key).decrypt(row["secret_config"], agent_aad("ag_1"))
    assert SECRET not in proc.stdout + proc.stderr
