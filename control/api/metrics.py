"""A tiny Prometheus text-format registry (counters and gauges with labels).

Other parts of the control plane add their own: ``REGISTRY.counter("converse_x_total", "help")``
then ``.inc(provider="twilio")``. Gauges may be callbacks evaluated at scrape time.
"""
from __future__ import annotations

import threading
from typing import Awaitable, Callable


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: tuple[tuple[str, str], ...]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels) + "}"


class Metric:
    def __init__(self, name: str, help: str, kind: str):
        self.name, self.help, self.kind = name, help, kind
        self.values: dict[tuple[tuple[str, str], ...], float] = {}
        self._lock = threading.Lock()

    def inc(self, amount: float = 1.0, **labels) -> None:
        key = tuple(sorted((k, str(v)) for k, v in labels.items()))
        with self._lock:
            self.values[key] = self.values.get(key, 0.0) + amount

    def set(self, value: float, **labels) -> None:
        key = tuple(sorted((k, str(v)) for k, v in labels.items()))
        with self._lock:
            self.values[key] = float(value)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        with self._lock:
            items = sorted(self.values.items())
        lines += [f"{self.name}{_labels(k)} {v:g}" for k, v in items]
        return lines


class Registry:
    def __init__(self):
        self.metrics: dict[str, Metric] = {}
        self.collectors: list[Callable[[], Awaitable[None]]] = []

    def _get(self, name: str, help: str, kind: str) -> Metric:
        m = self.metrics.get(name)
        if m is None:
            m = self.metrics[name] = Metric(name, help, kind)
        return m

    def counter(self, name: str, help: str) -> Metric:
        return self._get(name, help, "counter")

    def gauge(self, name: str, help: str) -> Metric:
        return self._get(name, help, "gauge")

    def collector(self, fn: Callable[[], Awaitable[None]]) -> None:
        """``fn`` refreshes gauges right before a scrape."""
        self.collectors.append(fn)

    async def render(self) -> str:
        for fn in self.collectors:
            await fn()
        lines: list[str] = []
        for name in sorted(self.metrics):
            lines += self.metrics[name].render()
        return "\n".join(lines) + "\n"


REGISTRY = Registry()
HTTP_REQUESTS = REGISTRY.counter("converse_http_requests_total", "HTTP requests by route and status")
PROVIDER_CALLS = REGISTRY.counter("converse_provider_calls_total",
                                  "Provider API calls by provider, operation and outcome")
WEBHOOKS = REGISTRY.counter("converse_webhooks_total", "Provider webhooks by provider and outcome")
