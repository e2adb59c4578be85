"""Label values made safe (observe/labels.py), the per-family and global byte
budgets, the streamed /metrics (same text as prometheus_client's, yielding to
the loop) and the rendered-size bound of /messages entries."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st

from protoproxy.admin import routes_metrics
from protoproxy.observe.labels import MARKER, MAX_LABEL_BYTES, safe_key, safe_value
from protoproxy.observe.prometheus import Exporter
from protoproxy.observe.render import entry_text
from protoproxy.observe.stats import OTHER, Counter, Gauge, Histogram, Stats
from protoproxy.observe.tail import MAX_ENTRY_RENDERED, Entry, newest_within
from protoproxy_codecs.base import Direction, Message
from tests.peers import ProxyThread

from .helpers import proxy_config

_values = st.one_of(
    st.text(),
    st.binary(max_size=600).map(lambda b: b.decode("utf-8", "surrogateescape")),
    st.binary(max_size=600).map(lambda b: b.decode("latin-1")),
    st.text(st.characters(codec="utf-8"), min_size=100, max_size=400),
)


@given(_values, st.integers(16, 300))
def test_safe_values_are_bounded_printable_and_stable(value: str, limit: int) -> None:
    out = safe_value(value, limit)
    assert len(out.encode()) <= limit
    assert out.isprintable()
    assert safe_value(value, limit) == out  # the same input, the same series
    if value.isprintable() and len(value.encode()) <= limit:
        assert out == value  # ordinary labels are exported as they always were
    if len(value) > limit:  # each character takes a byte at least: it had to be cut
        assert MARKER in out


@given(st.lists(st.text(st.characters(categories=["L", "N", "P"]), max_size=40), max_size=30))
def test_distinct_short_printable_values_stay_distinct(values: list[str]) -> None:
    assert len({safe_value(v) for v in values}) == len(set(values))


def test_long_values_sharing_a_prefix_stay_apart() -> None:
    a, b = "x" * 1000 + "a", "x" * 1000 + "b"
    assert safe_value(a) != safe_value(b)
    assert safe_value("\x00\n\t") == "\\x00\\x0a\\x09"
    key = ("l", "ok")
    assert safe_key(key) is key  # nothing to change: the very tuple, stored as it is


def test_a_cut_key_is_stored_cut_and_never_raw() -> None:
    stats = Stats()
    c = stats.counter("c_total", "c", ("id",))
    raw = ("y" * 32767,)
    for _ in range(3):
        c.inc(raw)
    assert raw not in c.values and len(c.values) == 1
    (key,) = c.values
    assert len(key[0].encode()) <= MAX_LABEL_BYTES and c.values[key] == 3
    assert c.get(raw) == 3
    h = stats.histogram("h_seconds", "h", ("id",))
    h.observe(raw, 0.1)
    h.observe(raw, 0.2)
    assert raw not in h.series and h.count(raw) == 2
    g = stats.gauge("g", "g", ("id",))
    g.set(raw, 5)
    assert g.get(raw) == 5
    g.remove(raw)
    assert not g.values and g.used_bytes == 0


def test_family_byte_budget_sends_new_series_to_other() -> None:
    stats = Stats(family_bytes=20_000)
    c = stats.counter("c_total", "c", ("id",))
    for i in range(1000):
        c.inc((f"{i:04d}" + "z" * 200,))
    assert c.used_bytes <= 20_000
    assert 1 < len(c.values) < 1000
    assert c.total() == 1000 and c.get((OTHER,)) > 0
    body = Exporter(stats).render()
    assert len(body) <= stats.export_bound()


def _charged(fam: Counter | Histogram) -> int:
    """What the family's series cost, recomputed from what it holds (`other` is free)."""
    keys = fam.series if isinstance(fam, Histogram) else fam.values
    return sum(fam.cost(k) for k in keys if k != (OTHER,) * len(fam.labelnames))


def test_global_byte_budget_folds_into_other_across_families() -> None:
    stats = Stats(family_bytes=1 << 20, total_bytes=40_000)
    c = stats.counter("c_total", "c", ("id",))
    h = stats.latency_histogram("h_seconds", "h", ("id",))
    g = stats.gauge("g", "g", ("id", "k"))
    for i in range(300):  # interleaved, so each family gets a share before it is spent
        c.inc((f"c{i:04d}" + "z" * 40,))
        h.observe((f"h{i:04d}",), 1000 * i)
        g.inc((f"g{i:04d}", "v"), 2)
    used = stats.used_bytes()
    assert used <= 40_000 and used + stats.byte_budget.left == 40_000
    for fam in (c, h, g):
        assert fam.used_bytes == _charged(fam) < 1 << 20  # no family budget was reached
    # every family folded into its own `other`, and totals stay exact
    assert 1 < len(c.values) < 300 and c.get((OTHER,)) > 0 and c.total() == 300
    assert 1 < len(h.series) < 300 and h.count((OTHER,)) > 0
    assert sum(s.count for s in h.series.values()) == 300
    assert g.get((OTHER, OTHER)) > 0 and g.total() == 600
    # the series that were held keep counting on the one dict hit
    c.inc(("c0000" + "z" * 40,), 5)
    assert c.get(("c0000" + "z" * 40,)) == 6 and c.total() == 305
    body = Exporter(stats).render()
    bound = stats.export_bound()
    assert len(body) <= bound < 3 * (1 << 20)  # the global budget, not the families', bounds it


def test_removing_a_series_gives_its_bytes_back_to_both_budgets() -> None:
    stats = Stats(family_bytes=1 << 20)
    g = stats.gauge("g", "g", ("id",))
    g.set(("a",), 1)
    stats.configure(10_000, total_bytes=3 * g.cost(("a",)))
    for key in ("b", "c", "d", "e"):
        g.set((key,), 1)
    assert set(g.values) == {("a",), ("b",), ("c",)}  # d and e did not fit
    assert stats.byte_budget.left == 0 and g.used_bytes == 3 * g.cost(("a",))
    left = stats.budget.left
    g.remove(("b",))
    assert stats.byte_budget.left == g.cost(("b",)) and g.used_bytes == 2 * g.cost(("a",))
    assert stats.budget.left == left + 1
    g.set(("d",), 4)  # the bytes given back hold a new series
    assert g.get(("d",)) == 4 and stats.byte_budget.left == 0
    g.inc(("f",))  # folds into `other`, which is never charged...
    assert g.get((OTHER,)) == 1 and g.used_bytes == _charged(g)
    g.remove((OTHER,))  # ...so removing it gives nothing back
    assert stats.byte_budget.left == 0 and stats.budget.left == left
    # a lower family budget than what is held: the family keeps it, adds nothing
    stats.configure(10_000, family_bytes=10, total_bytes=1 << 30)
    g.set(("h",), 1)
    assert ("h",) not in g.values and g.used_bytes == _charged(g)


_ops = st.lists(
    st.tuples(
        st.sampled_from(["inc", "observe", "set", "remove"]),
        st.integers(0, 2),  # which family
        st.text(st.characters(codec="utf-8"), max_size=60) | st.just(OTHER),
    ),
    max_size=120,
)


@given(_ops, st.integers(0, 30_000), st.integers(0, 60_000))
def test_byte_budgets_hold_whatever_the_operations(ops, family_bytes: int, total: int) -> None:
    stats = Stats(family_bytes=family_bytes, total_bytes=total)
    fams = [
        stats.counter("c_total", "c", ("id",)),
        stats.latency_histogram("h_seconds", "h", ("id",)),
        stats.gauge("g", "g", ("id",)),
    ]
    counted = [0, 0]  # increments of the counter, observations of the histogram
    for op, i, value in ops:
        fam = fams[i]
        if isinstance(fam, Histogram):
            fam.observe((value,), 7)
            counted[1] += 1
        elif isinstance(fam, Gauge) and op == "remove":
            fam.remove((value,))
        elif isinstance(fam, Gauge) and op == "set":
            fam.set((value,), 1)
        else:
            fam.inc((value,))
            counted[0] += fam is fams[0]
    for fam in fams:
        assert fam.used_bytes == _charged(fam) <= family_bytes
    assert stats.used_bytes() + stats.byte_budget.left == total
    assert fams[0].total() == counted[0]
    assert sum(s.count for s in fams[1].series.values()) == counted[1]
    assert len(Exporter(stats).render()) <= stats.export_bound()


def _awkward_stats() -> Stats:
    stats = Stats()
    c = stats.counter("a_total", "help \\ with\nnewline", ("z", "b", "le2"))
    c.inc(("x\\y", 'q"', "\x00\n" * 100), 3)
    c.inc(("1", "2", "3"), 2.5)
    stats.gauge("g", "gauge", ("k",)).set(("v",), 7)
    stats.counter("n_total", "no labels", ()).inc(())
    stats.latency_histogram("h_seconds", "ns", ("op", "zz")).observe(("a", "b"), 12345)
    stats.histogram("h2", "plain", ("ab", "m")).observe(("a" * 300, "b"), 0.3)
    return stats


def test_streamed_text_is_prometheus_clients_text() -> None:
    live = {"a_total": {("1", "2", "3"): 1, ("n", "n", "n"): 4}}
    exporter = Exporter(_awkward_stats(), lambda: live)
    assert exporter.render() == exporter.render_reference()
    chunks = list(exporter.chunks(lines=3))
    assert len(chunks) > 5 and b"".join(chunks) == exporter.render_reference()


def _big_stats(series: int) -> Stats:
    stats = Stats(max_series=series + 10, family_bytes=1 << 40)
    c = stats.counter("big_total", "many series", ("listener", "id"))
    for i in range(series):
        c.inc(("front", f"id-{i}"))
    return stats


async def _scrape_counting_ticks(stats: Stats, path: str) -> tuple[int, bytes]:
    """A scrape over real HTTP, with a task that counts its turns on the loop
    while the handler runs."""
    exporter = Exporter(stats)
    ticks = 0
    running = False

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0)
            if running:
                ticks += 1

    app = web.Application()
    for route in routes_metrics.routes(SimpleNamespace(stats=stats), exporter):  # type: ignore[arg-type]
        handler = route.handler

        async def counted(request: web.Request, handler=handler) -> web.StreamResponse:
            nonlocal running
            running = True
            try:
                return await handler(request)
            finally:
                running = False

        app.router.add_route(route.method, route.path, counted)
    task = asyncio.ensure_future(ticker())
    async with TestClient(TestServer(app)) as client:
        resp = await client.get(path)
        body = await resp.read()
    task.cancel()
    return ticks, body


def test_a_big_scrape_lets_the_loop_run_between_chunks() -> None:
    stats = _big_stats(60_000)  # 60 chunks of 1,000 lines
    ticks, body = asyncio.run(_scrape_counting_ticks(stats, "/metrics"))
    assert body.count(b"\nbig_total{") == 60_000
    assert ticks >= 50, ticks  # one render in one go would give the ticker a turn or two
    ticks, body = asyncio.run(_scrape_counting_ticks(stats, "/stats"))
    assert ticks >= 50, ticks
    assert len(json.loads(body)["big_total"]) == 60_000


def test_stats_json_is_the_snapshot() -> None:
    stats = _awkward_stats()
    _, body = asyncio.run(_scrape_counting_ticks(stats, "/stats"))
    assert json.loads(body) == json.loads(json.dumps(stats.snapshot()))


def test_served_entries_fit_the_rendered_budget_newest_first() -> None:
    entries = list(range(100))
    texts, left_out = newest_within(entries, lambda e: f"{e:09d}", 95)  # type: ignore[arg-type]
    assert texts == [f"{e:09d}" for e in range(90, 100)] and left_out == 90
    texts, left_out = newest_within(entries, lambda e: "x" * 1000, 10)  # type: ignore[arg-type]
    assert len(texts) == 1 and left_out == 99  # the newest is always served


def test_an_entry_whose_view_is_huge_is_served_as_its_summary() -> None:

    # a few bytes on the wire, a decoded view of megabytes (strings are not cut by the view)
    info = {"api": "Produce", "topics": ["t" * 100_000] * 50}
    msg = Message(Direction.UPSTREAM, "request", b"\x00" * 40, 7, info)
    e = Entry(1, 0.0, 1, "front", "kafka", Direction.UPSTREAM, msg, None)
    text = entry_text(e)
    assert len(text) <= MAX_ENTRY_RENDERED
    out = json.loads(text)
    assert out["truncated"]["rendered_bytes"] > 5_000_000
    assert out["seq"] == 1 and out["size"] == 40 and "info" not in out
    small = Message(Direction.UPSTREAM, "request", b"\x00" * 40, 7, {"api": "Produce"})
    assert "truncated" not in json.loads(
        entry_text(Entry(2, 0.0, 1, "f", "kafka", Direction.UPSTREAM, small, None))
    )


def test_metrics_config_reaches_the_store() -> None:
    cfg = proxy_config(
        "127.0.0.1:1",
        protocol="http",
        tail=False,
        metrics={
            "max_label_bytes": 32,
            "max_family_bytes": "64KiB",
            "family_bytes": {"protoproxy_exchange_duration_seconds": "2MiB"},
            "max_total_bytes": "3MiB",
        },
    )
    with ProxyThread(cfg) as proxy:
        stats = proxy.proxy.stats

        def read() -> tuple[int, int, int, int, int, bool]:
            c = stats.counter("probe_total", "p", ("v",))
            c.inc(("q" * 100,))
            ((value,),) = c.values
            return (
                len(value.encode()),
                c.max_bytes,
                stats.families["protoproxy_exchange_duration_seconds"].max_bytes,
                # a timing histogram follows the duration's budget, like its series cap
                stats.families["protoproxy_exchange_proxy_time_seconds"].max_bytes,
                # the global byte budget: what is held plus what is left
                stats.used_bytes() + stats.byte_budget.left,
                c.byte_budget is stats.byte_budget,
            )

        assert proxy.run(read) == (32, 64 * 1024, 2 << 20, 2 << 20, 3 << 20, True)


def test_metrics_byte_budgets_default_to_one_and_four_mib() -> None:
    cfg = proxy_config("127.0.0.1:1", protocol="http", tail=False)
    with ProxyThread(cfg) as proxy:
        stats = proxy.proxy.stats

        def read() -> tuple[int, int, int]:
            c = stats.counter("probe_total", "p", ("v",))
            c.inc(("q",))
            return (
                c.max_bytes,
                stats.families["protoproxy_exchange_duration_seconds"].max_bytes,
                stats.used_bytes() + stats.byte_budget.left,
            )

        assert proxy.run(read) == (1 << 20, 1 << 20, 4 << 20)
