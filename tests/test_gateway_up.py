"""`converse up` end to end as a real process: seeds the store (idempotently), serves control and
gateway in one process, a widget session works through the store's Directory, SIGTERM ends the
session with a reason and the process exits 0."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys

import trio

from gateway import transport
from gateway.protocols import canonical
from gateway.protocols.canonical import Text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _start_up(tmp_path, control_port, gateway_port):
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{tmp_path}/converse.db",
               CONVERSE_SECRET_KEY_FILE=str(tmp_path / "secret.key"), CONVERSE_LOG_LEVEL="WARNING")
    env.pop("CONVERSE_SECRET_KEY", None)
    env.pop("PUBLIC_URL", None)
    env.pop("GATEWAY_PUBLIC_URL", None)
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "control.cli", "up", "--port", str(control_port),
         "--gateway-port", str(gateway_port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    out = b""
    with trio.fail_after(60):
        while b"Demo:" not in out:
            chunk = await proc.stdout.receive_some(4096)
            assert chunk, "converse up exited early"
            out += chunk
    err = b""
    with trio.move_on_after(1):
        while b"echo agent" not in err or b"\n" not in err.split(b"echo agent", 1)[1]:
            err += await proc.stderr.receive_some(4096)
    agent = re.search(rb"echo agent (ag_[0-9a-f]+)", err).group(1).decode()
    # wait until the gateway accepts
    with trio.fail_after(30):
        while True:
            try:
                (await trio.open_tcp_stream("127.0.0.1", gateway_port)).socket.close()
                break
            except OSError:
                await trio.sleep(0.05)
    return proc, out.decode(), err.decode(), agent


async def _stop(proc) -> int:
    proc.send_signal(signal.SIGTERM)
    with trio.fail_after(30):
        return await proc.wait()


async def test_converse_up_serves_both_planes_and_stops_cleanly(tmp_path):
    control_port, gateway_port = _free_port(), _free_port()
    proc, out, err, agent = await _start_up(tmp_path, control_port, gateway_port)
    try:
        assert re.search(r"^cvk_\S+$", out, re.M), "the API key is printed once on stdout"
        assert f"Demo: http://localhost:{control_port}/demo" in out
        ws = await transport.connect(f"ws://127.0.0.1:{gateway_port}/ws/agent/{agent}",
                                     {"Origin": f"http://localhost:{control_port}"}, timeout=10)
        await ws.send_text(canonical.encode(Text(text="through the store")))
        with trio.fail_after(10):
            while True:
                event = canonical.decode(await ws.receive())
                if event.__class__.__name__ == "Transcript":
                    break
        assert event.text == "You said: through the store"
        demo = await _http_get(control_port, "/demo")
        assert f"ws://localhost:{gateway_port}".encode() in demo and agent.encode() in demo
        assert await _stop(proc) == 0
        with trio.fail_after(10):
            end = canonical.decode(await ws.receive())
        assert end.reason == "shutdown"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    # re-running is idempotent: same agent, no new key
    proc, out, err, again = await _start_up(tmp_path, control_port, gateway_port)
    try:
        assert again == agent
        assert "cvk_" not in out and "exists already" in err
    finally:
        assert await _stop(proc) == 0
    # the first run's session was recorded for the console's Activity page
    import sqlite3
    with sqlite3.connect(tmp_path / "converse.db") as db:
        rows = db.execute("SELECT channel_id, kind, frames_out FROM console_sessions").fetchall()
    assert len(rows) == 1 and rows[0][0] and rows[0][1]


async def _http_get(port: int, path: str) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(f"GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\n"
                              f"Connection: close\r\n\r\n".encode())
        data = b""
        with trio.fail_after(10):
            while b"</html>" not in data.lower():       # Hypercorn may keep the socket open
                chunk = await stream.receive_some(65536)
                assert chunk, data[:200]
                data += chunk
        return data


async def test_converse_gateway_workers_share_a_port_and_stop_cleanly(tmp_path):
    from control import up
    from control.config import Settings
    from control.store import open_store
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{tmp_path}/converse.db",
               CONVERSE_SECRET_KEY_FILE=str(tmp_path / "secret.key"), CONVERSE_LOG_LEVEL="WARNING")
    env.pop("CONVERSE_SECRET_KEY", None)
    store = open_store(Settings.from_env(env))
    try:
        seeded = store.run_sync(up.seed, ["http://localhost:8000"])
    finally:
        store.close()
    port = _free_port()
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "control.cli", "gateway", "--port", str(port), "--workers", "2"],
        env=env, cwd=tmp_path)
    try:
        sessions = []
        with trio.fail_after(60):
            while len(sessions) < 6:
                try:
                    sessions.append(await transport.connect(
                        f"ws://127.0.0.1:{port}/ws/agent/{seeded['agent_id']}",
                        {"Origin": "http://localhost:8000"}, timeout=10))
                except transport.HandshakeError:
                    await trio.sleep(0.1)          # workers still starting
        for i, ws in enumerate(sessions):
            await ws.send_text(canonical.encode(Text(text=f"n{i}")))
            with trio.fail_after(10):
                event = canonical.decode(await ws.receive())
            assert event.text == f"You said: n{i}"
        assert await _stop(proc) == 0
        for ws in sessions:
            with trio.fail_after(10):
                assert canonical.decode(await ws.receive()).reason == "shutdown"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_converse_gateway_on_postgresql_follows_changes_and_stops_cleanly(
        tmp_path, postgres_admin_url):
    """A gateway node on PostgreSQL (LISTEN task running): a session works, deactivating its
    channel elsewhere refuses new handshakes, and SIGTERM still exits 0."""
    import msgspec

    from control import up
    from control.config import Settings
    from control.secrets import generate_key
    from control.store import open_store, repo
    from fixtures_control import create_database
    env = dict(os.environ, DATABASE_URL=create_database(postgres_admin_url),
               CONVERSE_SECRET_KEY=generate_key(), CONVERSE_LOG_LEVEL="WARNING")
    store = open_store(Settings.from_env(env))
    try:
        seeded = store.run_sync(up.seed, ["http://localhost:8000"])
        port = _free_port()
        url = f"ws://127.0.0.1:{port}/ws/agent/{seeded['agent_id']}"
        origin = {"Origin": "http://localhost:8000"}
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "control.cli", "gateway", "--port", str(port)], env=env,
            cwd=tmp_path)
        try:
            with trio.fail_after(60):
                while True:
                    try:
                        ws = await transport.connect(url, origin, timeout=10)
                        break
                    except (OSError, transport.HandshakeError):
                        await trio.sleep(0.1)          # still starting
            await ws.send_text(canonical.encode(Text(text="on postgres")))
            with trio.fail_after(10):
                assert canonical.decode(await ws.receive()).text == "You said: on postgres"
            await ws.aclose()

            def deactivate(tx):
                row = repo.get_channel(tx, seeded["channel_id"])
                assert repo.update_channel(tx, msgspec.structs.replace(row, status="inactive"))
            store.run_sync(deactivate)
            with trio.fail_after(60):
                while True:
                    try:
                        ws = await transport.connect(url, origin, timeout=10)
                    except transport.HandshakeError as exc:
                        assert exc.status == 403
                        break
                    await ws.aclose()
                    await trio.sleep(0.05)
            assert await _stop(proc) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    finally:
        store.close()
