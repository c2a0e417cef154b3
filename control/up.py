"""``converse up`` (both planes, embedded defaults, one Trio process) and ``converse gateway`` (the
media plane alone, optionally one process per core sharing the port with SO_REUSEPORT).

``up`` on a fresh machine: creates the SQLite store (migrations), an API key (printed once), an
``echo`` agent and an active web channel allowing http://localhost:8000 — each only if missing, so
re-running is harmless — then serves control (Hypercorn, :8000) and the gateway (:8080) in one
nursery and prints the demo URL. SIGINT/SIGTERM stop both gracefully; the exit status is 0.
"""
from __future__ import annotations

import functools
import logging
import os
import secrets
import signal
import subprocess
import sys

import trio

log = logging.getLogger("converse.up")

DEMO_ORIGIN = "http://localhost:8000"      # for the default control port; see demo_origins()
ECHO_NAME = "echo"
DEMO_CHANNEL_NAME = "Demo web channel (echo)"


def gateway_limits():
    """Limits from the environment (``CONVERSE_LIMIT_<FIELD>=value``), defaults otherwise."""
    from gateway.limits import Limits
    defaults = Limits()
    changes = {}
    for field in Limits.__struct_fields__:
        raw = os.environ.get(f"CONVERSE_LIMIT_{field.upper()}")
        if raw:
            kind = type(getattr(defaults, field))
            try:
                changes[field] = (tuple(v.strip() for v in raw.split(",") if v.strip())
                                  if kind is tuple else kind(raw))
            except ValueError:
                raise SystemExit(f"converse: CONVERSE_LIMIT_{field.upper()} must be a {kind.__name__}")
    return defaults.replace(**changes)


# -- seeding (idempotent) -------------------------------------------------------------------------
def demo_origins(control_port: int) -> list[str]:
    return [f"http://localhost:{control_port}", f"http://127.0.0.1:{control_port}"]


def seed(tx, origins: list[str] = (DEMO_ORIGIN,)) -> dict:
    """Create what the demo needs unless it exists. Returns what was found/created; ``api_key`` is
    the plaintext of a key created now (None when one existed)."""
    from control.store import create_api_key, repo
    result = {"api_key": None}
    if not [k for k in repo.list_api_keys(tx) if not k.revoked_at]:
        _, result["api_key"] = create_api_key(tx, "converse up")
    echo = next((a for a in repo.list_agents(tx) if a.kind == "echo"), None)
    if echo is None:
        now = repo.now_iso()
        echo = repo.AgentRow(id="ag_" + secrets.token_hex(8), name=ECHO_NAME, kind="echo",
                             created_at=now, updated_at=now)
        repo.insert_agent(tx, echo)
    result["agent_id"] = echo.id
    channel = next((c for c in repo.list_channels(tx, type="web")
                    if c.agent_id == echo.id and origins[0] in c.allowed_origins), None)
    if channel is None:
        now = repo.now_iso()
        channel = repo.ChannelRow(id="ch_" + secrets.token_hex(8), name=DEMO_CHANNEL_NAME,
                                  type="web", agent_id=echo.id, allowed_origins=list(origins),
                                  status="active", created_at=now, updated_at=now)
        repo.insert_channel(tx, channel)
    result["channel_id"] = channel.id
    result["channel_status"] = channel.status
    return result


# -- running --------------------------------------------------------------------------------------
async def _until_signal(on_signal, task_status=trio.TASK_STATUS_IGNORED) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        task_status.started()
        async for sig in signals:
            log.info("received %s: shutting down", signal.Signals(sig).name)
            on_signal()
            return


async def run_up(settings, store, *, host: str, control_port: int, gateway_port: int,
                 task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Control (Hypercorn) and gateway in one nursery until SIGINT/SIGTERM (or cancellation)."""
    from hypercorn.trio import serve as hypercorn_serve

    from control import flow_services
    from control.api import create_app
    from control.api.serve import hypercorn_config
    from control.console import activity
    from control.store.directory import StoreDirectory
    from gateway import media
    from gateway.server import GatewayServer

    directory = StoreDirectory(store)
    app = create_app(settings, store, directory=directory)
    if not os.environ.get("GATEWAY_PUBLIC_URL") and not os.environ.get("PUBLIC_URL"):
        # the demo page must point at the gateway we start, whatever port it is on
        app.config["CONVERSE_GATEWAY_PUBLIC_URL"] = f"ws://localhost:{gateway_port}"
    gateway = GatewayServer(directory, settings.token_secret, gateway_limits())
    media.install(gateway)             # /media/{provider}/{channel_id}: phone media streams
    flow_services.install(gateway, store, settings=settings)   # flows: TTS, SMS, transfers
    activity.attach(gateway, store)    # the console's Activity page and live session counts
    stop = trio.Event()

    def shutdown():
        stop.set()
        gateway.shutdown()
        directory.close()          # ends the LISTEN task below

    async with trio.open_nursery() as nursery:
        await nursery.start(_until_signal, shutdown)
        await nursery.start(directory.listen)   # PostgreSQL: config changes arrive by NOTIFY
        await nursery.start(gateway.serve, host, gateway_port)
        config = hypercorn_config(host, control_port)
        nursery.start_soon(lambda: hypercorn_serve(app, config, shutdown_trigger=stop.wait))
        task_status.started(gateway)
        await stop.wait()
        nursery.cancel_scope.deadline = trio.current_time() + max(
            gateway.limits.drain_timeout_s, 10.0) + 2.0


def up_command(args) -> int:
    from control.cli import _logging, _settings, _store
    _logging()
    settings = _settings()
    store = _store(settings)
    try:
        host = args.host or settings.control_host
        control_port = args.port or settings.control_port
        seeded = store.run_sync(seed, demo_origins(control_port))
        gateway_port = args.gateway_port
        if seeded["api_key"]:
            print("Created an API key; it is shown only now:", file=sys.stderr)
            print(seeded["api_key"])
        else:
            print("An API key exists already (`converse keys create NAME` makes another).",
                  file=sys.stderr)
        print(f"echo agent {seeded['agent_id']}, web channel {seeded['channel_id']} "
              f"({seeded['channel_status']}, origins {', '.join(demo_origins(control_port))})",
              file=sys.stderr)
        print(f"control  http://{host}:{control_port}/api/v1   gateway ws://{host}:{gateway_port}",
              file=sys.stderr)
        print(f"Demo: http://localhost:{control_port}/demo", flush=True)
        trio.run(lambda: run_up(settings, store, host=host, control_port=control_port,
                                gateway_port=gateway_port))
    finally:
        store.close()
    return 0


# -- converse gateway -----------------------------------------------------------------------------
async def run_gateway(directory, token_secret: bytes, limits, *, host: str, port: int,
                      reuse_port: bool = False, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """The media plane alone until SIGINT/SIGTERM: stop accepting, end sessions, drain, return."""
    from control import flow_services
    from control.console import activity
    from gateway import media
    from gateway.server import GatewayServer
    server = GatewayServer(directory, token_secret, limits)
    media.install(server)              # /media/{provider}/{channel_id}: phone media streams
    flow_services.install(server, getattr(directory, "store", None))   # flows (TTS, SMS outbox)
    if getattr(directory, "store", None) is not None:
        activity.attach(server, directory.store)   # finished sessions for the console's Activity

    def shutdown():
        server.shutdown()
        if hasattr(directory, "close"):
            directory.close()      # ends the LISTEN task below

    async with trio.open_nursery() as nursery:
        await nursery.start(_until_signal, shutdown)
        if hasattr(directory, "listen"):          # PostgreSQL: config changes arrive by NOTIFY
            await nursery.start(directory.listen)
        await nursery.start(functools.partial(server.serve, host, port, reuse_port=reuse_port))
        log.info("gateway on ws://%s:%d (pid %d)", host, server.port, os.getpid())
        task_status.started(server)


def gateway_command(args) -> int:
    from control.cli import _logging, _settings, _store
    _logging()
    if args.workers > 1:
        return _run_workers(args)
    settings = _settings()
    store = _store(settings)
    try:
        from control.store.directory import StoreDirectory
        trio.run(lambda: run_gateway(StoreDirectory(store), settings.token_secret,
                                     gateway_limits(), host=args.host, port=args.port,
                                     reuse_port=args.reuse_port))
    finally:
        store.close()
    return 0


def _run_workers(args) -> int:
    """N single-threaded worker processes sharing the port (SO_REUSEPORT: the kernel spreads
    connections). Signals are forwarded; the exit status is the worst worker's."""
    cmd = [sys.executable, "-m", "control.cli", "gateway", "--host", args.host,
           "--port", str(args.port), "--workers", "1", "--reuse-port"]
    procs = [subprocess.Popen(cmd) for _ in range(args.workers)]

    def forward(sig, _frame):
        for p in procs:
            if p.poll() is None:
                p.send_signal(sig)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    return max(p.wait() for p in procs)
