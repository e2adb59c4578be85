"""The stats store: plain dicts of ints, indexed by label tuples.

The hot path does ``family.values[key] += 1`` style work on a tuple it
already holds (per connection or per codec state); no locks (one event loop),
no label objects per message. Exporters (Prometheus, /stats JSON) read the
families when asked.

Everything that bounds memory and /metrics is decided on the miss path only,
when a family is about to hold a label set it has not seen: the series caps
(per family and global), the label values' escaping and cut (labels.py), and
the byte budgets (per family and global). A key whose values had to be cut is
stored under the cut key only; the raw key is never kept, so a client sending
32 KiB client ids costs a cut per increment (it keeps missing) but never 32 KiB
held per series.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field

from .labels import MAX_LABEL_BYTES, safe_key

OTHER = "other"

# Seconds; covers loopback proxy hops (tens of microseconds) to multi-second
# Kafka long polls.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)

NS = 1_000_000_000
#: The same bounds in nanoseconds, for histograms fed Exchange timings (ints,
#: from the one nanosecond clock) without a conversion per observation.
LATENCY_BUCKETS_NS: tuple[int, ...] = tuple(round(b * NS) for b in LATENCY_BUCKETS)


class Budget:
    """What all families of a Stats may still add together: the global series
    cap (in label sets) or the global byte budget (in /metrics bytes).

    One instance of each is shared by every family of a Stats, so that a
    family can only grow into what the others left; only consulted when a
    family is about to add a new label set, never on the `+=` path of an
    existing one. What is held plus `left` stays constant (between two
    `Stats.configure`), which is what `Stats.export_bound` relies on.
    """

    __slots__ = ("left",)

    def __init__(self, left: int) -> None:
        self.left = left

    def take(self, n: int = 1) -> bool:
        if self.left >= n:
            self.left -= n
            return True
        return False

    def give(self, n: int = 1) -> None:
        self.left += n


#: Families made outside a Stats share these: no global bound.
_UNLIMITED = Budget(1 << 62)
_UNLIMITED_BYTES = Budget(1 << 62)
#: Default byte budget of one family (`metrics.max_family_bytes`): about 300
#: latency-histogram series or 8,000 counter series with short labels, enough
#: for hundreds of gRPC methods or broker listeners x Kafka operations. What
#: keeps /metrics small when a dozen families are bombed at once is the global
#: budget (`metrics.max_total_bytes`, 4 MiB), not this one.
MAX_FAMILY_BYTES = 1024 * 1024
#: Bytes a sample value takes at most in /metrics (floatToGoString), with its space.
_VALUE_BYTES = 26


def exposition_bytes(value: str) -> int:
    """Bytes a (safe) label value takes inside the quotes of /metrics."""
    n = len(value) if value.isascii() else len(value.encode())
    return n + value.count("\\") + value.count('"')


def line_overhead(name: str, labelnames: tuple[str, ...], histogram: bool) -> int:
    """Bytes of the family's longest /metrics line, label values aside (a
    histogram's ``_bucket`` lines, with their ``le`` label)."""
    n = len(name) + len("{}") + sum(len(label) + len('="",') for label in labelnames)
    if histogram:
        n += len('_bucket,le=""') + 12
    return n + _VALUE_BYTES + 1


@dataclass(eq=False)
class Counter:
    name: str
    help: str
    labelnames: tuple[str, ...]
    values: dict[tuple[str, ...], float] = field(default_factory=dict)
    #: Distinct label sets held, `other` included: past max_series - 1 distinct
    #: ones, new label sets fold into ("other", ...), so the family never exceeds it.
    max_series: int = 10000
    budget: Budget = field(default=_UNLIMITED, repr=False)
    #: bytes a label value may take, escaped (`metrics.max_label_bytes`)
    label_bytes: int = MAX_LABEL_BYTES
    #: bytes the family's series may take in /metrics together, `other` aside
    #: (`metrics.max_family_bytes`); past it, new label sets go to `other`
    max_bytes: int = MAX_FAMILY_BYTES
    #: what the series held take of `max_bytes` (see `cost`), and of `byte_budget`
    used_bytes: int = 0
    #: /metrics bytes all families may still add (`metrics.max_total_bytes`)
    byte_budget: Budget = field(default=_UNLIMITED_BYTES, repr=False)

    #: /metrics lines per series
    lines = 1

    def inc(self, key: tuple[str, ...], amount: float = 1) -> None:
        values = self.values
        if key in values:
            values[key] += amount
            return
        safe = safe_key(key, self.label_bytes)
        if safe is not key and safe in values:
            values[safe] += amount
        # the last slot is kept for `other`, which no budget ever refuses
        elif self.admit(safe, len(values)):
            values[safe] = amount
        else:
            other = (OTHER,) * len(self.labelnames)
            values[other] = values.get(other, 0) + amount

    def floor(self) -> int:
        """Bytes the cheapest series of this family takes (empty label values)."""
        return self.lines * line_overhead(self.name, self.labelnames, self.lines > 1)

    def cost(self, key: tuple[str, ...]) -> int:
        """Bytes the series of `key` (a safe key) takes in /metrics, at most."""
        return self.floor() + self.lines * sum(exposition_bytes(v) for v in key)

    def admit(self, safe: tuple[str, ...], held: int) -> bool:
        """Whether a new series may be held, charging it if so.

        It must fit the series cap, then the family's byte budget and the
        global one (a series past either goes to `other`, never half charged),
        then the global series budget (last: taking from it is the commitment).
        The all-`other` label set is the slot kept for overflow: never charged,
        never refused, so that giving back on remove stays exact.
        """
        if safe == (OTHER,) * len(self.labelnames):
            return True
        if held >= self.max_series - 1:
            return False
        floor = self.floor()
        room = min(self.max_bytes - self.used_bytes, self.byte_budget.left)
        if room < floor:
            return False  # full: the steady state of overflow pays no cost estimate
        cost = floor + self.lines * sum(exposition_bytes(v) for v in safe)
        if cost > room or not self.budget.take():
            return False
        self.used_bytes += cost
        self.byte_budget.left -= cost  # within `room`, so within what it has left
        return True

    def get(self, key: tuple[str, ...]) -> float:
        values = self.values
        if key in values:
            return values[key]
        return values.get(safe_key(key, self.label_bytes), 0)

    def total(self) -> float:
        return sum(self.values.values())


@dataclass(eq=False)
class Gauge(Counter):
    def set(self, key: tuple[str, ...], value: float) -> None:
        values = self.values
        if key in values:
            values[key] = value
            return
        safe = safe_key(key, self.label_bytes)
        if (safe is not key and safe in values) or self.admit(safe, len(values)):
            values[safe] = value

    def dec(self, key: tuple[str, ...], amount: float = 1) -> None:
        self.inc(key, -amount)

    def remove(self, key: tuple[str, ...]) -> None:
        """Drop a series whose value is no longer known, giving its slot back."""
        values = self.values
        if key not in values:
            key = safe_key(key, self.label_bytes)
            if key not in values:
                return
        del values[key]
        if key != (OTHER,) * len(self.labelnames):  # `other` was never charged
            cost = self.cost(key)
            self.budget.give()
            self.byte_budget.give(cost)
            self.used_bytes -= cost


class HistogramSeries:
    """Bucket counts (non-cumulative), sum and count for one label set.

    The count is the buckets' total, summed when read (scrapes, tests) rather
    than kept: one increment fewer per observation, and an exchange makes
    six (its duration, the four timing parts, a per-method latency).
    """

    __slots__ = ("buckets", "sum")

    def __init__(self, n: int) -> None:
        self.buckets = [0] * (n + 1)  # last slot is +Inf
        self.sum: float = 0  # an int while only ints are observed (ns timings)

    @property
    def count(self) -> int:
        return sum(self.buckets)


@dataclass(eq=False)
class Histogram:
    name: str
    help: str
    labelnames: tuple[str, ...]
    bounds: tuple[float, ...] = LATENCY_BUCKETS
    series: dict[tuple[str, ...], HistogramSeries] = field(default_factory=dict)
    max_series: int = 10000
    budget: Budget = field(default=_UNLIMITED, repr=False)
    #: observed values (and `bounds`) are in 1/scale of the exported unit:
    #: NS for histograms of nanosecond timings exported in seconds
    scale: int = 1
    #: the family whose series cap this one follows ("" = its own name)
    cap_of: str = ""
    label_bytes: int = MAX_LABEL_BYTES
    max_bytes: int = MAX_FAMILY_BYTES
    used_bytes: int = 0
    byte_budget: Budget = field(default=_UNLIMITED_BYTES, repr=False)

    @property
    def lines(self) -> int:
        return len(self.bounds) + 3  # the buckets, +Inf, _count and _sum

    floor = Counter.floor
    cost = Counter.cost
    admit = Counter.admit

    def observe(self, key: tuple[str, ...], value: float) -> None:
        series = self.series
        s = series.get(key)
        if s is None:
            safe = safe_key(key, self.label_bytes)
            s = series.get(safe) if safe is not key else None
            if s is None:
                if not self.admit(safe, len(series)):
                    safe = (OTHER,) * len(self.labelnames)
                    s = series.get(safe)
                if s is None:
                    s = series[safe] = HistogramSeries(len(self.bounds))
        s.buckets[bisect_left(self.bounds, value)] += 1
        s.sum += value

    def count(self, key: tuple[str, ...]) -> int:
        s = self.series.get(key)
        if s is None:
            s = self.series.get(safe_key(key, self.label_bytes))
        return s.count if s else 0


class Stats:
    """Every metric family of one proxy process, by name."""

    def __init__(
        self,
        max_series: int = 10000,
        caps: dict[str, int] | None = None,
        max_total: int | None = None,
        label_bytes: int = MAX_LABEL_BYTES,
        family_bytes: int = MAX_FAMILY_BYTES,
        byte_caps: dict[str, int] | None = None,
        total_bytes: int | None = None,
    ) -> None:
        self.max_series = max_series
        #: per-family caps by name, overriding `max_series`
        self.caps: dict[str, int] = dict(caps or {})
        self.families: dict[str, Counter | Histogram] = {}
        self.budget = Budget(max_total if max_total is not None else 1 << 62)
        self.label_bytes = label_bytes
        self.family_bytes = family_bytes
        #: per-family byte budgets by name, overriding `family_bytes`
        self.byte_caps: dict[str, int] = dict(byte_caps or {})
        #: /metrics bytes the series of all families may take together, `other`s
        #: aside (`metrics.max_total_bytes`; None: no global byte budget)
        self.byte_budget = Budget(total_bytes if total_bytes is not None else 1 << 62)

    def configure(
        self,
        max_series: int,
        caps: dict[str, int] | None = None,
        max_total: int | None = None,
        label_bytes: int = MAX_LABEL_BYTES,
        family_bytes: int = MAX_FAMILY_BYTES,
        byte_caps: dict[str, int] | None = None,
        total_bytes: int | None = None,
    ) -> None:
        """Set series caps, for families that exist already and ones made later.

        The Proxy builds its Stats before the config's `metrics:` section is
        applied, so caps are (re)applied here; lowering a cap keeps the series
        already held and folds only new ones into `other`. `max_total` bounds
        the label sets of all families together (each family's `other` aside),
        `total_bytes` their /metrics bytes; what is held already counts
        against both. Label and byte limits likewise apply to the series made
        from now on.
        """
        self.max_series = max_series
        self.label_bytes = label_bytes
        self.family_bytes = family_bytes
        self.byte_caps = dict(byte_caps or {})
        self.caps = dict(caps or {})
        total = max_total if max_total is not None else 1 << 62
        self.budget.left = max(0, total - self.series_count())
        total_b = total_bytes if total_bytes is not None else 1 << 62
        self.byte_budget.left = max(0, total_b - self.used_bytes())
        for fam in self.families.values():
            fam.max_series = self.cap(fam.name, getattr(fam, "cap_of", ""))
            fam.label_bytes = label_bytes
            fam.max_bytes = self.bytes_cap(fam.name, getattr(fam, "cap_of", ""))

    def cap(self, name: str, cap_of: str = "") -> int:
        """The family's own cap if configured, else that of `cap_of`, else the default."""
        if name in self.caps or not cap_of:
            return self.caps.get(name, self.max_series)
        return self.caps.get(cap_of, self.max_series)

    def bytes_cap(self, name: str, cap_of: str = "") -> int:
        """The family's byte budget: its own, else that of `cap_of`, else the default."""
        if name in self.byte_caps or not cap_of:
            return self.byte_caps.get(name, self.family_bytes)
        return self.byte_caps.get(cap_of, self.family_bytes)

    def used_bytes(self) -> int:
        """/metrics bytes charged to the series held, across all families."""
        return sum(f.used_bytes for f in self.families.values())

    def series_count(self) -> int:
        """Label sets held across all families (what bounds memory and /metrics)."""
        return sum(
            len(f.series) if isinstance(f, Histogram) else len(f.values)
            for f in self.families.values()
        )

    def counter(self, name: str, help: str, labelnames: tuple[str, ...]) -> Counter:
        fam = self.families.get(name)
        if fam is None:
            fam = self.families[name] = Counter(
                name,
                help,
                labelnames,
                max_series=self.cap(name),
                budget=self.budget,
                label_bytes=self.label_bytes,
                max_bytes=self.bytes_cap(name),
                byte_budget=self.byte_budget,
            )
        assert isinstance(fam, Counter)
        return fam

    def gauge(self, name: str, help: str, labelnames: tuple[str, ...]) -> Gauge:
        fam = self.families.get(name)
        if fam is None:
            fam = self.families[name] = Gauge(
                name,
                help,
                labelnames,
                max_series=self.cap(name),
                budget=self.budget,
                label_bytes=self.label_bytes,
                max_bytes=self.bytes_cap(name),
                byte_budget=self.byte_budget,
            )
        assert isinstance(fam, Gauge)
        return fam

    def histogram(
        self,
        name: str,
        help: str,
        labelnames: tuple[str, ...],
        bounds: tuple[float, ...] = LATENCY_BUCKETS,
        scale: int = 1,
        cap_of: str = "",
    ) -> Histogram:
        fam = self.families.get(name)
        if fam is None:
            fam = self.families[name] = Histogram(
                name,
                help,
                labelnames,
                bounds,
                max_series=self.cap(name, cap_of),
                budget=self.budget,
                scale=scale,
                cap_of=cap_of,
                label_bytes=self.label_bytes,
                max_bytes=self.bytes_cap(name, cap_of),
                byte_budget=self.byte_budget,
            )
        assert isinstance(fam, Histogram)
        return fam

    def latency_histogram(
        self, name: str, help: str, labelnames: tuple[str, ...], cap_of: str = ""
    ) -> Histogram:
        """A histogram of Exchange timings: observed in ns (ints), exported in seconds."""
        return self.histogram(name, help, labelnames, LATENCY_BUCKETS_NS, NS, cap_of)

    def export_bound(self) -> int:
        """Bytes /metrics takes at most with the families that exist now.

        The series (`other` aside) take at most what they are charged when
        made (an upper estimate per series): within each family's `max_bytes`
        (or what it held when its budget was lowered), and all of them within
        the global byte budget, whose held plus left is its total. Each family
        adds its `other` series and its HELP and TYPE lines, which no budget
        refuses; nothing else is exported.
        """
        families = 0
        overhead = 0
        for fam in self.families.values():
            families += max(fam.max_bytes, fam.used_bytes)
            other = fam.cost((OTHER,) * len(fam.labelnames))
            header = 2 * (len("# HELP  \n") + len(fam.name) + len("_total")) + len(fam.help)
            overhead += other + header + len("# TYPE  histogram")
        return min(families, self.used_bytes() + self.byte_budget.left) + overhead

    def __iter__(self) -> Iterator[Counter | Histogram]:
        return iter(self.families.values())

    def snapshot(self) -> dict[str, object]:
        """JSON-able view for /stats and tests."""
        out: dict[str, object] = {}
        for fam in self:
            if isinstance(fam, Histogram):
                out[fam.name] = [
                    {
                        "labels": dict(zip(fam.labelnames, key, strict=True)),
                        "count": s.count,
                        "sum": s.sum / fam.scale if fam.scale != 1 else s.sum,
                    }
                    for key, s in fam.series.items()
                ]
            else:
                out[fam.name] = [
                    {"labels": dict(zip(fam.labelnames, key, strict=True)), "value": v}
                    for key, v in fam.values.items()
                ]
        return out
