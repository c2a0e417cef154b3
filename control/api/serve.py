"""Serve the control app with Hypercorn on Trio until SIGTERM/SIGINT (graceful: Hypercorn stops
accepting and lets in-flight requests finish within ``graceful_timeout``)."""
from __future__ import annotations

import logging
import signal

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from control.api import create_app
from control.config import Settings
from control.store import Store

log = logging.getLogger("converse.control")

GRACEFUL_TIMEOUT_S = 10.0


def hypercorn_config(host: str, port: int) -> Config:
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.worker_class = "trio"
    config.graceful_timeout = GRACEFUL_TIMEOUT_S
    config.keep_alive_timeout = 30
    config.h11_max_incomplete_size = 16 * 1024
    # Access log without query strings: they can carry tokens (hub.verify_token, ?token=).
    config.accesslog = logging.getLogger("converse.access")
    config.access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss'
    config.errorlog = logging.getLogger("converse.control")
    return config


async def _until_signal(task_status=trio.TASK_STATUS_IGNORED) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        task_status.started()
        async for sig in signals:
            log.info("received %s: shutting down", signal.Signals(sig).name)
            return


async def run_control(settings: Settings, store: Store, *, host: str | None = None,
                      port: int | None = None, extra_blueprints=(), directory=None,
                      shutdown_trigger=None) -> None:
    """Serve until ``shutdown_trigger()`` returns (default: SIGTERM/SIGINT). ``converse up`` passes
    its own trigger (one signal handler for both planes) and the directory it shares with the
    gateway, so a change made through the API reaches the media plane at once."""
    app = create_app(settings, store, directory=directory, extra_blueprints=extra_blueprints)
    config = hypercorn_config(host or settings.control_host, port or settings.control_port)
    log.info("control plane on http://%s (database: %s)", config.bind[0], store.dialect)
    await serve(app, config, shutdown_trigger=shutdown_trigger or _until_signal)
