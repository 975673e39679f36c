"""Counters and gauges in the Prometheus text exposition format (version 0.0.4).

A small registry, so that every component sharing the web server (the WWSF, the
gateway mounted on the same port) can publish at ``/metrics`` without a client
library::

    metrics = Metrics()
    served = metrics.counter("webims_web_config_served_total", "config.json documents served")
    served.inc()
    requests = metrics.counter("webims_web_http_requests_total", "HTTP requests", ("handler", "code"))
    requests.inc(handler="index", code="200")
    text = metrics.render()

Names follow the Prometheus conventions (``_total`` for counters, base units).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

__all__ = ["CONTENT_TYPE", "Counter", "Gauge", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


def _escape(value: str) -> str:
    """Label value escaping of the text format: backslash, double quote, line feed."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if value == int(value) and abs(value) < 1e15 else repr(float(value))


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help_text: str, labels: tuple[str, ...] = (), *,
                 max_series: int = 1000) -> None:
        if not _NAME.match(name):
            raise ValueError(f"invalid metric name {name!r}")
        for label in labels:
            if not _LABEL.match(label) or label.startswith("__"):
                raise ValueError(f"invalid label name {label!r}")
        self.name = name
        self.help = help_text
        self.labels = labels
        self.max_series = max_series
        self.values: dict[tuple[str, ...], float] = {}
        self.callback: Callable[[], float] | None = None

    def _key(self, labels: dict[str, str]) -> tuple[str, ...]:
        if set(labels) != set(self.labels):
            raise ValueError(f"{self.name} takes labels {self.labels}, got {tuple(labels)}")
        key = tuple(str(labels[name]) for name in self.labels)
        if key not in self.values and len(self.values) >= self.max_series:
            key = tuple("other" for _ in self.labels)  # bounded cardinality
        return key

    def value(self, **labels: str) -> float:
        if self.callback is not None and not self.labels:
            return self.callback()
        return self.values.get(tuple(str(labels[n]) for n in self.labels), 0.0)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help.replace(chr(92), chr(92) * 2).replace(chr(10), ' ')}",
                 f"# TYPE {self.name} {self.kind}"]
        if self.callback is not None:
            lines.append(f"{self.name} {_number(self.callback())}")
        elif not self.labels and not self.values:
            lines.append(f"{self.name} 0")
        for key, value in sorted(self.values.items()):
            if self.labels:
                pairs = ",".join(f'{n}="{_escape(v)}"' for n, v in zip(self.labels, key, strict=True))
                lines.append(f"{self.name}{{{pairs}}} {_number(value)}")
            else:
                lines.append(f"{self.name} {_number(value)}")
        return lines


class Counter(_Metric):
    """A monotonically increasing count."""

    kind = "counter"

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        key = self._key(labels)
        self.values[key] = self.values.get(key, 0.0) + amount


class Gauge(_Metric):
    """A value that goes up and down; or read from ``callback`` at each scrape."""

    kind = "gauge"

    def set(self, value: float, **labels: str) -> None:
        self.values[self._key(labels)] = float(value)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = self._key(labels)
        self.values[key] = self.values.get(key, 0.0) + amount

    def dec(self, amount: float = 1.0, **labels: str) -> None:
        self.inc(-amount, **labels)


class Metrics:
    """A registry of metrics, rendered together."""

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}

    def _add(self, metric: _Metric) -> _Metric:
        existing = self._metrics.get(metric.name)
        if existing is not None:
            if type(existing) is not type(metric) or existing.labels != metric.labels:
                raise ValueError(f"metric {metric.name} already registered differently")
            return existing
        self._metrics[metric.name] = metric
        return metric

    def counter(self, name: str, help_text: str, labels: tuple[str, ...] = ()) -> Counter:
        metric = self._add(Counter(name, help_text, labels))
        assert isinstance(metric, Counter)
        return metric

    def gauge(self, name: str, help_text: str, labels: tuple[str, ...] = (), *,
              callback: Callable[[], float] | None = None) -> Gauge:
        metric = self._add(Gauge(name, help_text, labels))
        assert isinstance(metric, Gauge)
        if callback is not None:
            metric.callback = callback
        return metric

    def get(self, name: str) -> Counter | Gauge | None:
        metric = self._metrics.get(name)
        return metric if isinstance(metric, Counter | Gauge) else None

    def render(self) -> str:
        lines: list[str] = []
        for name in sorted(self._metrics):
            lines.extend(self._metrics[name].render())
        return "\n".join(lines) + "\n"
