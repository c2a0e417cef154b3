"""``GET /healthz`` (is the database reachable) and ``GET /metrics`` (Prometheus text)."""
from __future__ import annotations

import collections

import trio
from quart import Blueprint, Response

from control import models
from control.api.errors import json_response
from control.api.metrics import REGISTRY
from control.api.routing import operation
from control.api.state import state
from control.store import StoreError, repo

bp = Blueprint("health", __name__)

HEALTH_DEADLINE_S = 5.0
CHANNELS = REGISTRY.gauge("converse_channels", "Channels by type and status")
DIRECTORY_RELOADS = REGISTRY.gauge("converse_directory_reloads", "Directory snapshot reloads")
DB_THREADS = REGISTRY.gauge("converse_store_threads_busy", "Store worker threads in use")


def _ping(tx) -> int:
    return repo.config_version(tx)


@operation(bp, "GET", "/healthz", summary="Liveness and database reachability", tag="health",
           auth=False, responses={200: models.Health, 503: models.Health})
async def healthz():
    try:
        with trio.fail_after(HEALTH_DEADLINE_S):
            await state().store.read(_ping)
    except (StoreError, trio.TooSlowError, OSError) as exc:
        return json_response(models.Health("unavailable", type(exc).__name__), 503)
    return json_response(models.Health("ok", "ok"))


async def _collect() -> None:
    st = state()
    rows = await st.store.read(repo.list_channels)
    counts = collections.Counter((r.type, r.status) for r in rows)
    CHANNELS.values.clear()
    for ctype in models.PROVIDERS_BY_TYPE:
        for status in ("setup", "active", "inactive", "error"):
            CHANNELS.set(counts.get((ctype, status), 0), type=ctype, status=status)
    DIRECTORY_RELOADS.set(st.directory.reloads)
    DB_THREADS.set(st.store.limiter.borrowed_tokens)


@operation(bp, "GET", "/metrics", summary="Prometheus metrics (text format)", tag="health",
           auth=False, responses={200: "text"})
async def metrics():
    await _collect()
    return Response(await REGISTRY.render(), content_type="text/plain; version=0.0.4; charset=utf-8")
