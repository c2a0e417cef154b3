"""Pytest fixtures: a live control plane (``converse control`` in a subprocess, real Hypercorn on a
free 127.0.0.1 port) on SQLite and on PostgreSQL, with the provider emulators running.

``control_server`` (session scope, parametrized ``sqlite`` / ``postgres``) yields a
:class:`ControlServer`: ``base_url``, ``api_key``, ``settings``, ``env``, ``client()`` (an httpx
client with the key), ``log_text()`` (everything the server logged), ``cli(...)`` (run ``converse``
with the same environment), ``restart()``, and the emulators (``twilio``, ``plivo``, ``exotel``,
``meta``). Use ``start_control_server(tmp_dir, database_url, extra_env)`` for a private one.

PostgreSQL: ``DATABASE_URL_TEST`` if set (a server where we may CREATE DATABASE), else a throwaway
cluster (``initdb`` + ``pg_ctl`` from /usr/lib/postgresql/*/bin, as the ``postgres`` user when we
are root) on a free port; ``require()`` skips (or in CI fails) when neither is available.
"""
from __future__ import annotations

import contextlib
import glob
import os
import pathlib
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import httpx
import pytest

from conftest import ROOT, require
from control.config import Settings
from control.secrets import generate_key

STARTUP_DEADLINE_S = 60.0      # generous: a cold start on a loaded 2-core box; not a measurement
STOP_DEADLINE_S = 15.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reserve_port() -> socket.socket:
    """A loopback port held bound until the server meant for it starts (``.close()`` then): a
    number from ``free_port()`` released at once was once handed to another bind(0) in between
    (the gateway then died with EADDRINUSE and the tests talked to someone else's server)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s


def start_gateway_cli(workdir: pathlib.Path, env: dict[str, str],
                      reserved: socket.socket) -> subprocess.Popen:
    """``converse gateway`` on the reserved port, logging to ``workdir/gateway.log``; returns once
    THIS process has logged that it listens there (a successful connect alone could reach
    another server on a reused port). The caller stops it."""
    port = reserved.getsockname()[1]
    path = workdir / "gateway.log"
    reserved.close()
    with open(path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "control.cli", "gateway", "--port", str(port)],
            env=dict(env), cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    ready = f"gateway on ws://127.0.0.1:{port} (pid {proc.pid})"
    deadline = time.monotonic() + STARTUP_DEADLINE_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("gateway exited:\n" + path.read_text())
        if ready in path.read_text():
            return proc
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise RuntimeError("gateway did not start:\n" + path.read_text())


class ControlServer:
    def __init__(self, workdir: pathlib.Path, env: dict[str, str], emulators: dict | None = None):
        self.workdir = workdir
        self.env = env
        self.log_path = workdir / "control.log"
        self.emulators = emulators or {}
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.settings = Settings.from_env(env)
        self.api_key = ""

    # ------------------------------------------------------------------ life cycle
    def start(self) -> "ControlServer":
        self.port = free_port()
        env = dict(self.env, CONTROL_PORT=str(self.port), CONTROL_HOST="127.0.0.1")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "control.cli", "control"], env=env,
                                     cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + STARTUP_DEADLINE_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"control plane exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                if httpx.get(self.base_url + "/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"control plane did not become healthy:\n{self.log_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_DEADLINE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_DEADLINE_S)
        self.proc = None

    def restart(self, **env) -> "ControlServer":
        self.stop()
        self.env.update(env)
        self.settings = Settings.from_env(self.env)
        return self.start()

    # ------------------------------------------------------------------ helpers
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, key: str | None = None, **kw) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key or self.api_key}"}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30, **kw)

    def async_client(self, key: str | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, timeout=30,
                                 headers={"Authorization": f"Bearer {key or self.api_key}"})

    def log_text(self) -> str:
        return self.log_path.read_text("utf-8", "replace") if self.log_path.exists() else ""

    def cli(self, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "control.cli", *args], cwd=self.workdir,
                              env=dict(self.env, **(env or {})), capture_output=True, text=True,
                              timeout=120, check=check)

    def create_key(self, name: str = "test") -> str:
        from control.store import create_api_key, open_store
        store = open_store(self.settings)
        try:
            return store.run_sync(create_api_key, name)[1]
        finally:
            store.close()

    def __getattr__(self, name):
        emulators = self.__dict__.get("emulators") or {}
        if name in emulators:
            return emulators[name]
        raise AttributeError(name)


def base_env(workdir: pathlib.Path, database_url: str, extra: dict | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CONVERSE_", "DATABASE_URL", "PUBLIC_URL", "GATEWAY_PUBLIC_URL",
                                "CONTROL_", "TWILIO_", "PLIVO_", "EXOTEL_", "META_"))}
    env.update({
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": database_url,
        "CONVERSE_SECRET_KEY_FILE": str(workdir / "secret.key"),
        "PUBLIC_URL": "https://converse.example.test",
        "CONVERSE_LOG_LEVEL": "DEBUG",
    })
    env.update(extra or {})
    return env


def start_control_server(workdir: pathlib.Path, database_url: str, extra_env: dict | None = None,
                         emulators: dict | None = None) -> ControlServer:
    workdir.mkdir(parents=True, exist_ok=True)
    server = ControlServer(workdir, base_env(workdir, database_url, extra_env), emulators)
    server.api_key = server.create_key("fixture")
    return server.start()


# ------------------------------------------------------------------------------- PostgreSQL
class PostgresCluster:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (trust auth, fsync off: test data only)."""

    def __init__(self):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        self.bindir = pathlib.Path(bins[-1]).parent if bins else None
        self.dir = None
        self.port = 0

    def _run(self, *cmd: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(prefix + list(cmd), check=True, capture_output=True, timeout=120)

    def start(self) -> str:
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="converse-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        data = self.dir / "data"
        self._run(str(self.bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8")
        self.port = free_port()
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off " \
               "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        self._run(str(self.bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-w", "-t", "60",
                  "-l", str(self.dir / "pg.log"), "start")
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        if self.dir is None:
            return
        with contextlib.suppress(Exception):
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate",
                      "-w", "-t", "30", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


def create_database(admin_url: str) -> str:
    """A fresh, empty database on the server ``admin_url`` points at; return its URL."""
    import psycopg
    name = "converse_" + secrets.token_hex(6)
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def postgres_admin_url():
    if os.environ.get("DATABASE_URL_TEST"):
        yield os.environ["DATABASE_URL_TEST"]
        return
    cluster = PostgresCluster()
    require(cluster.bindir is not None, "PostgreSQL binaries not found in /usr/lib/postgresql/*/bin "
            "(install postgresql or set DATABASE_URL_TEST)")
    require(os.geteuid() != 0 or shutil.which("runuser") is not None, "runuser not found")
    try:
        url = cluster.start()
    except subprocess.CalledProcessError as exc:
        cluster.stop()
        require(False, f"could not start a PostgreSQL cluster: {exc.stderr!r}")
    try:
        yield url
    finally:
        cluster.stop()


@pytest.fixture
def database_url(request, tmp_path):
    """A fresh database URL for the backend named by ``request.param`` (indirect parametrization)
    or ``sqlite`` by default."""
    backend = getattr(request, "param", "sqlite")
    if backend == "postgres":
        return create_database(request.getfixturevalue("postgres_admin_url"))
    return f"sqlite:///{tmp_path / 'converse.db'}"


def start_emulators(stack: contextlib.ExitStack) -> tuple[dict, dict[str, str]]:
    """The four provider emulators, stopped with ``stack``, and the environment that points a
    control-plane process at them (with a fresh secret key and a 3 s provider deadline)."""
    from emulators import ExotelEmulator, MetaEmulator, PlivoEmulator, TwilioEmulator

    emus = {"twilio": stack.enter_context(TwilioEmulator()),
            "plivo": stack.enter_context(PlivoEmulator()),
            "exotel": stack.enter_context(ExotelEmulator()),
            "meta": stack.enter_context(MetaEmulator())}
    env = {"TWILIO_API_BASE": emus["twilio"].url, "PLIVO_API_BASE": emus["plivo"].url,
           "EXOTEL_API_BASE": emus["exotel"].url, "META_GRAPH_BASE": emus["meta"].base,
           "CONVERSE_SECRET_KEY": generate_key(), "CONVERSE_PROVIDER_DEADLINE_S": "3"}
    return emus, env


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def control_server(request, tmp_path_factory):
    """Session scope: one server per backend for the whole run (starting one costs seconds on a
    busy box). Tests create their own channels/agents and must leave emulator faults cleared."""
    workdir = tmp_path_factory.mktemp(f"control-{request.param}")
    if request.param == "postgres":
        url = create_database(request.getfixturevalue("postgres_admin_url"))
    else:
        url = f"sqlite:///{workdir / 'converse.db'}"
    with contextlib.ExitStack() as stack:
        emus, env = start_emulators(stack)
        server = start_control_server(workdir, url, env, emus)
        stack.callback(server.stop)
        yield server
