"""Prometheus export: a custom collector that reads `Stats` only when scraped.

prometheus_client's own metric objects lock on every update and build a child
object per label set; the hot path avoids both by keeping plain dicts in
`Stats`, and this collector turns them into metric families at scrape time.
It lives on a private CollectorRegistry so that importing code which uses the
global registry (grpcio, libraries) never mixes its metrics into ours.

/metrics itself is written by `Exporter.chunks`, which renders the same text
as ``generate_latest`` (a test holds them byte for byte equal) a thousand
lines at a time, so the admin route can yield to the event loop between
chunks: a scrape of a full store never stalls the proxy's connections.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
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
from prometheus_client.utils import floatToGoString

from .stats import Counter, Gauge, Histogram, Stats

if TYPE_CHECKING:
    from ..proxy import Proxy

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BYTES_FAMILY = "protoproxy_bytes_total"

#: Extra values to add at scrape time: family name -> {label tuple: amount}.
LiveValues = Callable[[], dict[str, dict[tuple[str, ...], float]]]
#: Lines per chunk of /metrics: the event loop runs between chunks.
CHUNK_LINES = 1000


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
        """The whole text at once (tests, small stores); the route streams `chunks`."""
        return b"".join(self.chunks())

    def render_reference(self) -> bytes:
        """prometheus_client's own rendering of the same store, to test `chunks` by."""
        return generate_latest(self.registry)

    def chunks(self, lines: int = CHUNK_LINES) -> Iterator[bytes]:
        """/metrics as UTF-8 chunks of about `lines` lines each.

        Each family's series are copied (a list of references) when its turn
        comes, so the store may change between chunks; a histogram series is
        read whole within one chunk, so its buckets always agree with its count.
        """
        collector = self.collector
        extra = collector.live() if collector.live is not None else {}
        out: list[str] = []
        for fam in list(collector.stats):
            for line in _family_lines(fam, extra.get(fam.name)):
                out.append(line)
                if len(out) >= lines:
                    yield "".join(out).encode()
                    out = []
        if out:
            yield "".join(out).encode()


def _escape(v: str) -> str:
    if "\\" in v or "\n" in v or '"' in v:
        return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return v


def _label_parts(labelnames: tuple[str, ...], extra: str | None) -> tuple[list[int], int]:
    """Label positions in the exported (name-sorted) order, and where `extra` goes."""
    names = list(labelnames) + ([extra] if extra is not None else [])
    order = sorted(range(len(names)), key=names.__getitem__)
    at = order.index(len(labelnames)) if extra is not None else -1
    return [i for i in order if i < len(labelnames)], at


def _family_lines(
    fam: Counter | Histogram, add: dict[tuple[str, ...], float] | None
) -> Iterable[str]:
    """The lines of one family, in generate_latest's format and order."""
    help_text = fam.help.replace("\\", "\\\\").replace("\n", "\\n")
    if isinstance(fam, Histogram):
        yield from _histogram_lines(fam, help_text)
        return
    if isinstance(fam, Gauge):
        sample, kind = fam.name, "gauge"
    else:
        base = fam.name[:-6] if fam.name.endswith("_total") else fam.name
        sample, kind = base + "_total", "counter"
    yield f"# HELP {sample} {help_text}\n"
    yield f"# TYPE {sample} {kind}\n"
    values = fam.values
    if add:
        values = dict(values)
        for key, amount in add.items():
            values[key] = values.get(key, 0) + amount
    names = fam.labelnames
    order, _ = _label_parts(names, None)
    for key, v in list(values.items()):
        if names:
            labels = ",".join(f'{names[i]}="{_escape(key[i])}"' for i in order)
            yield f"{sample}{{{labels}}} {floatToGoString(v)}\n"
        else:
            yield f"{sample} {floatToGoString(v)}\n"


def _histogram_lines(fam: Histogram, help_text: str) -> Iterable[str]:
    name = fam.name
    yield f"# HELP {name} {help_text}\n"
    yield f"# TYPE {name} histogram\n"
    scale = fam.scale  # ns histograms are exported in seconds
    bounds = [_bound(b / scale if scale != 1 else b) for b in fam.bounds] + ["+Inf"]
    names = fam.labelnames
    order, at = _label_parts(names, "le")
    for key, s in list(fam.series.items()):
        parts = [f'{names[i]}="{_escape(key[i])}"' for i in order]
        before = ",".join(parts[:at])
        after = ",".join(parts[at:])
        pre = f"{name}_bucket{{{before}," if before else f"{name}_bucket{{"
        post = f",{after}}}" if after else "}"
        acc = 0
        lines = []
        for le, n in zip(bounds, s.buckets, strict=True):
            acc += n
            lines.append(f'{pre}le="{le}"{post} {floatToGoString(acc)}\n')
        plain = "{" + ",".join(parts) + "}" if parts else ""
        total = s.sum / scale if scale != 1 else s.sum
        lines.append(f"{name}_count{plain} {floatToGoString(acc)}\n")
        lines.append(f"{name}_sum{plain} {floatToGoString(total)}\n")
        yield from lines
