"""Prometheus export: a custom collector that reads `Stats` only when scraped.

prometheus_client's own metric objects lock on every update and build a child
object per label set; the hot path avoids both by keeping plain dicts in
`Stats`, and this collector turns them into metric families at scrape time.
It lives on a private CollectorRegistry so that importing code which uses the
global registry (grpcio, libraries) never mixes its metrics into ours.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from .stats import Counter, Gauge, Histogram, Stats

if TYPE_CHECKING:
    from ..proxy import Proxy

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BYTES_FAMILY = "protoproxy_bytes_total"

#: Extra values to add at scrape time: family name -> {label tuple: amount}.
LiveValues = Callable[[], dict[str, dict[tuple[str, ...], float]]]


def _bound(b: float) -> str:
    return "+Inf" if b == float("inf") else repr(float(b))


class StatsCollector(Collector):
    def __init__(self, stats: Stats, live: LiveValues | None = None) -> None:
        self.stats = stats
        self.live = live

    def collect(self) -> Iterator[Metric]:
        extra = self.live() if self.live is not None else {}
        for fam in list(self.stats):
            labelnames = list(fam.labelnames)
            if isinstance(fam, Histogram):
                h = HistogramMetricFamily(fam.name, fam.help, labels=labelnames)
                scale = fam.scale  # ns histograms are exported in seconds
                bounds = [_bound(b / scale if scale != 1 else b) for b in fam.bounds] + ["+Inf"]
                for key, s in list(fam.series.items()):
                    acc = 0
                    buckets = []
                    for le, n in zip(bounds, s.buckets, strict=True):
                        acc += n
                        buckets.append((le, acc))
                    h.add_metric(list(key), buckets, s.sum / scale if scale != 1 else s.sum)
                yield h
                continue
            values = fam.values
            add = extra.get(fam.name)
            if add:
                values = dict(values)
                for key, amount in add.items():
                    values[key] = values.get(key, 0) + amount
            if isinstance(fam, Gauge):
                g = GaugeMetricFamily(fam.name, fam.help, labels=labelnames)
                for key, v in list(values.items()):
                    g.add_metric(list(key), v)
                yield g
            elif isinstance(fam, Counter):
                c = CounterMetricFamily(fam.name, fam.help, labels=labelnames)
                for key, v in list(values.items()):
                    c.add_metric(list(key), v)
                yield c


def live_bytes(proxy: Proxy) -> LiveValues:
    """Bytes of connections still open, so byte counters are exact at any scrape."""

    def read() -> dict[str, dict[tuple[str, ...], float]]:
        out: dict[tuple[str, ...], float] = {}
        for conn in proxy.connections.values():
            name = conn.listener.name
            up, down = conn.bytes
            if up:
                k = (name, "upstream")
                out[k] = out.get(k, 0) + up
            if down:
                k = (name, "downstream")
                out[k] = out.get(k, 0) + down
        return {BYTES_FAMILY: out}

    return read


class Exporter:
    """The private registry and the text rendering for /metrics."""

    def __init__(self, stats: Stats, live: LiveValues | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = StatsCollector(stats, live)
        self.registry.register(self.collector)

    def render(self) -> bytes:
        return generate_latest(self.registry)
