"""Shared plumbing for provider modules: deadlines, SDK threads, httpx calls, error mapping.

Every provider call ends in exactly one of: a result, :class:`ProviderRejected` (the provider said
no), :class:`ProviderUnavailable` (unreachable, 5xx, garbage; :class:`ProviderRateLimited` for 429),
or :class:`ProviderTimeout`. Messages carry the provider's own words but never credentials: we
build them ourselves from status codes and the provider's error text, never from request objects.
"""
from __future__ import annotations

import functools
import json
import ssl
from typing import Any, Callable, Iterable, TypeVar

import httpx
import msgspec
import requests
import trio

from control.providers.base import (SDK_LIMITER, ProviderRejected, ProviderTimeout,
                                    ProviderUnavailable)

T = TypeVar("T")

# Cap on how much of a provider's error text goes into our messages (and so into API answers).
MAX_ERROR_TEXT = 300


class ProviderRateLimited(ProviderUnavailable):
    """HTTP 429: transient; retry after ``retry_after`` seconds (None: the provider gave none)."""

    def __init__(self, provider: str, message: str, *, status: int | None = 429,
                 retry_after: float | None = None):
        super().__init__(provider, message, status=status)
        self.retry_after = retry_after


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After in delta-seconds form; HTTP-date form and garbage give None."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def clip(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_ERROR_TEXT else text[:MAX_ERROR_TEXT] + "..."


def error_for_status(provider: str, status: int, words: str, *, code: object = None,
                     retry_after: float | None = None, kind: str | None = None) -> Exception:
    """Map a provider's HTTP error answer to our error classes.

    4xx means the provider understood us and refused (422 upstream), except 408/429 which are
    transient; 5xx and anything stranger mean "try again later" (502). ``kind`` ("rate_limited",
    "unavailable", "rejected") overrides the status where a provider's own error code says more.
    """
    where = f"code {code}, HTTP {status}" if code not in (None, "", status) else f"HTTP {status}"
    message = f"{clip(words)} ({where})" if words else where
    if kind is None:
        kind = ("rate_limited" if status == 429 else
                "rejected" if 400 <= status < 500 and status != 408 else "unavailable")
    if kind == "rate_limited":
        return ProviderRateLimited(provider, message, status=status, retry_after=retry_after)
    if kind == "rejected":
        return ProviderRejected(provider, message, status=status)
    return ProviderUnavailable(provider, message, status=status)


def require_credentials(provider: str, creds: dict, fields: Iterable[str]) -> None:
    """ProviderRejected naming (never echoing) the credential fields that are absent or empty."""
    missing = [f for f in fields if not creds.get(f)]
    if missing:
        raise ProviderRejected(provider, f"missing credential field(s): {', '.join(missing)}")


def sdk_error(provider: str, exc: BaseException) -> BaseException:
    """What a ``requests``-based SDK's transport or parsing failure means; ``exc`` itself if
    it is neither (a bug of ours: it propagates as it is)."""
    if isinstance(exc, requests.exceptions.Timeout):
        return ProviderTimeout(provider, "no answer within the deadline")
    if isinstance(exc, requests.exceptions.RequestException):
        return ProviderUnavailable(provider, f"cannot reach the API: {type(exc).__name__}")
    if isinstance(exc, (ValueError, KeyError, IndexError, TypeError, AttributeError)):
        # What an SDK raises when a 2xx body is not the record it expected.
        return ProviderUnavailable(provider, f"unparseable answer: {type(exc).__name__}")
    return exc


async def run_sdk(provider: str, deadline: float, fn: Callable[[], T],
                  translate: Callable[[Exception], BaseException]) -> T:
    """Run a blocking SDK call in a worker thread under SDK_LIMITER and ``deadline`` seconds.

    ``translate`` maps what ``fn`` raises to our errors, in the thread, so no SDK exception type
    escapes (returning the exception itself re-raises it unchanged). A thread cannot be
    cancelled: on timeout we abandon it (it keeps its limiter token until it returns), so callers
    must also give the SDK's HTTP client a timeout so the thread does end.
    """
    def work() -> T:
        try:
            return fn()
        except Exception as exc:
            translated = translate(exc)
            if translated is exc:
                raise
            raise translated from None

    try:
        with trio.fail_after(deadline):
            return await trio.to_thread.run_sync(work, limiter=SDK_LIMITER, abandon_on_cancel=True)
    except trio.TooSlowError:
        raise ProviderTimeout(provider, f"no answer within {deadline:g} s") from None


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verified TLS context per process: building one loads the CA bundle (tens of ms)."""
    return httpx.create_ssl_context()


def json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):     # RecursionError: hostile nesting
        return None


class HttpJson:
    """A tiny JSON-over-HTTPS caller on httpx with one deadline per call.

    ``words_of`` extracts ``(text, code)`` -- the provider's human-readable error text and its own
    error code, if any -- from a decoded error body; it must not raise on odd shapes.
    ``kind_of`` maps a provider error code to an error kind (see :func:`error_for_status`).
    """

    def __init__(self, provider: str, deadline: float,
                 words_of: Callable[[Any], tuple[str, object]],
                 kind_of: Callable[[object], str | None] = lambda code: None):
        self.provider = provider
        self.deadline = deadline
        self.words_of = words_of
        self.kind_of = kind_of

    async def request(self, method: str, url: str, *, auth: httpx.Auth | tuple | None = None,
                      headers: dict | None = None, params: dict | None = None,
                      json_body: Any = None, answer: type | None = None) -> Any:
        """Send one request (``json_body`` may be a msgspec Struct); return the 2xx answer
        decoded into ``answer`` (a msgspec type), or as plain JSON when ``answer`` is None."""
        timeout = httpx.Timeout(self.deadline)
        content = None if json_body is None else msgspec.json.encode(json_body)
        if content is not None:
            headers = dict(headers or {}, **{"Content-Type": "application/json"})
        try:
            with trio.fail_after(self.deadline):
                # trust_env=False: a stray HTTP(S)_PROXY must not receive our Authorization header.
                async with httpx.AsyncClient(timeout=timeout, trust_env=False,
                                             verify=_tls_context(),
                                             follow_redirects=False) as client:
                    response = await client.request(method, url, auth=auth, headers=headers,
                                                    params=params, content=content)
        except (trio.TooSlowError, httpx.TimeoutException):
            raise ProviderTimeout(self.provider, f"no answer within {self.deadline:g} s") from None
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(self.provider, f"cannot reach the API: "
                                      f"{type(exc).__name__}") from None
        return self._decode(response, answer)

    def _decode(self, response: httpx.Response, answer: type | None) -> Any:
        status = response.status_code
        if 200 <= status < 300 and answer is not None:
            try:
                return msgspec.json.decode(response.content, type=answer)
            except (msgspec.DecodeError, RecursionError) as exc:   # ValidationError included;
                # RecursionError: hostile nesting, even inside a field we skip
                raise ProviderUnavailable(self.provider, f"unexpected answer (HTTP {status}): "
                                          f"{clip(str(exc))}", status=status) from None
        body = json_or_none(response.text) if response.content else None
        if 200 <= status < 300:
            if response.content and body is None:
                raise ProviderUnavailable(self.provider, f"unparseable answer (HTTP {status})",
                                          status=status)
            return body
        words, code = self.words_of(body) if body is not None else ("", None)
        raise error_for_status(self.provider, status, words, code=code, kind=self.kind_of(code),
                               retry_after=parse_retry_after(response.headers.get("retry-after")))
