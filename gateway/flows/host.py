"""Host-side helpers on Trio: perform the engine's I/O actions the same way in every host.

The engine stays pure; a voice/web session or the messaging worker runs it and uses these for the
actions that are the same everywhere:

* :func:`call_api` performs a ``CallApi`` with httpx under its ``timeout_s`` and returns the
  ``ApiResult`` to feed back (never raises for the endpoint's faults: refused, slow, 5xx, huge);
* :func:`classify` performs a ``Classify``: POST ``{"text": ...}`` to the classifier URL, which
  answers ``{"category": "<name>"}``; returns the ``ClassifierResult``;
* :class:`FlowTimers` runs ``StartTimer``/``CancelTimer`` in a nursery and delivers ``TimerFired``
  into a bounded channel the host reads events from.

Redirects are not followed (the validated URL is the only host contacted) and response bodies are
capped at :data:`MAX_RESPONSE_BYTES`. Bodies and URLs are never logged (they may carry tokens).
"""
from __future__ import annotations

import logging

import httpx
import msgspec
import trio

from .events import ApiResult, CallApi, Classify, ClassifierResult, Event, TimerFired

log = logging.getLogger("converse.flows")

MAX_RESPONSE_BYTES = 256 * 1024
_CONNECT_TIMEOUT_S = 5.0


def client() -> httpx.AsyncClient:
    """An httpx client suited to flow requests (no redirects, per-request deadlines)."""
    return httpx.AsyncClient(follow_redirects=False,
                             timeout=httpx.Timeout(30.0, connect=_CONNECT_TIMEOUT_S))


async def _read_capped(response: httpx.Response) -> bytes | None:
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _request(http: httpx.AsyncClient, method: str, url: str, headers: dict,
                   content: bytes | None, timeout_s: float) -> tuple[int, bytes | None, str | None]:
    """(status, body, error): one bounded HTTP exchange; errors are short and safe to log."""
    try:
        with trio.fail_after(timeout_s):
            request = http.build_request(method, url, headers=headers, content=content,
                                         timeout=httpx.Timeout(timeout_s))
            response = await http.send(request, stream=True)
            try:
                body = await _read_capped(response)
            finally:
                await response.aclose()
    except trio.TooSlowError:
        return 0, None, "timeout"
    except httpx.TimeoutException:
        return 0, None, "timeout"
    except (httpx.HTTPError, httpx.InvalidURL, ValueError, OSError) as exc:
        return 0, None, type(exc).__name__        # refused, reset, bad URL/header, ...
    if body is None:
        return response.status_code, None, "response too large"
    return response.status_code, body, None


async def call_api(http: httpx.AsyncClient, action: CallApi) -> ApiResult:
    """Perform ``action``; the result carries the status and the body text (the engine decodes
    JSON), or ``error`` ("timeout", "response too large", the httpx error's class name)."""
    content = action.body.encode() if action.body is not None else None
    status, body, error = await _request(http, action.method, action.url, action.headers,
                                         content, action.timeout_s)
    if error is not None:
        log.info("flow api_call %s failed: %s", action.request_id, error)
        return ApiResult(action.request_id, status=status, error=error)
    return ApiResult(action.request_id, status=status,
                     body=body.decode("utf-8", "replace") if body else "")


async def classify(http: httpx.AsyncClient, action: Classify) -> ClassifierResult:
    """POST ``{"text": ...}``; a 2xx JSON answer ``{"category": "..."}`` names the category."""
    content = msgspec.json.encode({"text": action.text})
    status, body, error = await _request(http, "POST", action.url,
                                         {"Content-Type": "application/json"}, content,
                                         action.timeout_s)
    if error is None and not 200 <= status < 300:
        error = f"HTTP {status}"
    if error is None:
        try:
            answer = msgspec.json.decode(body or b"")
        except (msgspec.DecodeError, RecursionError):
            answer = None
        category = answer.get("category") if isinstance(answer, dict) else None
        if isinstance(category, str):
            return ClassifierResult(action.request_id, category=category[:64])
        error = "no category in the answer"
    log.info("flow classifier %s failed: %s", action.request_id, error)
    return ClassifierResult(action.request_id, error=error)


class FlowTimers:
    """The engine's timers as Trio tasks: each StartTimer sleeps in ``nursery`` and then sends
    ``TimerFired`` on ``events``; CancelTimer (or :meth:`cancel_all`) stops it first."""

    def __init__(self, nursery: trio.Nursery, events: trio.MemorySendChannel[Event]):
        self._nursery = nursery
        self._events = events
        self._scopes: dict[str, trio.CancelScope] = {}

    def start(self, timer_id: str, seconds: float) -> None:
        self.cancel(timer_id)
        scope = trio.CancelScope()
        self._scopes[timer_id] = scope
        self._nursery.start_soon(self._run, timer_id, seconds, scope)

    def cancel(self, timer_id: str) -> None:
        scope = self._scopes.pop(timer_id, None)
        if scope is not None:
            scope.cancel()

    def cancel_all(self) -> None:
        for timer_id in list(self._scopes):
            self.cancel(timer_id)

    @property
    def pending(self) -> int:
        return len(self._scopes)

    async def _run(self, timer_id: str, seconds: float, scope: trio.CancelScope) -> None:
        with scope:
            await trio.sleep(seconds)
            self._scopes.pop(timer_id, None)
            await self._events.send(TimerFired(timer_id))
