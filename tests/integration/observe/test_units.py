"""The observe building blocks on their own: caps, export, tail bounds, scrubbing,
sampling. Fast, and each can fail on its own."""

from __future__ import annotations

import asyncio
import json
import logging
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from protoproxy.config import AccessLog as AccessLogConfig
from protoproxy.config import Tail
from protoproxy.observe.access_log import AccessLog
from protoproxy.observe.prometheus import Exporter
from protoproxy.observe.redact import LogRedactor, header_pairs, scrub_text
from protoproxy.observe.stats import OTHER, Stats
from protoproxy.observe.tail import MessageTail
from protoproxy_codecs.base import Direction, Exchange, Message


@given(st.lists(st.text(min_size=1, max_size=5), max_size=300), st.integers(1, 50))
def test_counter_never_exceeds_its_cap_and_keeps_totals(keys: list[str], cap: int) -> None:
    stats = Stats(caps={"t_total": cap})
    c = stats.counter("t_total", "t", ("k",))
    h = stats.histogram("t_seconds", "t", ("k",))
    stats.configure(1000, {"t_total": cap, "t_seconds": cap})
    for k in keys:
        c.inc((k,))
        h.observe((k,), 0.01)
    assert len(c.values) <= cap and len(h.series) <= cap
    assert c.total() == len(keys) == sum(s.count for s in h.series.values())
    distinct = len(set(keys))
    if distinct >= cap:
        assert ((OTHER,) in c.values) == (distinct > cap - 1)


def test_global_cap_bounds_all_families_together() -> None:
    stats = Stats()
    a = stats.counter("a_total", "a", ("k",))
    a.inc(("held",))
    stats.configure(1000, {}, max_total=10)
    b = stats.counter("b_total", "b", ("k",))
    h = stats.histogram("h_seconds", "h", ("k",))
    for i in range(100):
        a.inc((f"a{i}",))
        b.inc((f"b{i}",))
        h.observe((f"h{i}",), 0.1)
    assert stats.series_count() == 10 + 3  # the budget, plus one `other` per family
    assert a.total() == 101 and b.total() == 100 and h.count((OTHER,)) > 0


def test_prometheus_histogram_is_cumulative_and_bytes_include_live() -> None:
    stats = Stats()
    h = stats.histogram("protoproxy_x_seconds", "x", ("op",))
    for v in (0.00005, 0.003, 0.003, 7.0, 100.0):
        h.observe(("a",), v)
    b = stats.counter("protoproxy_bytes_total", "b", ("listener", "direction"))
    b.inc(("l", "upstream"), 10)
    live = {"protoproxy_bytes_total": {("l", "upstream"): 5.0, ("m", "downstream"): 7.0}}
    text = Exporter(stats, lambda: live).render().decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }
    assert samples[("protoproxy_x_seconds_bucket", (("le", "0.0001"), ("op", "a")))] == 1
    assert samples[("protoproxy_x_seconds_bucket", (("le", "0.005"), ("op", "a")))] == 3
    assert samples[("protoproxy_x_seconds_bucket", (("le", "10.0"), ("op", "a")))] == 4
    assert samples[("protoproxy_x_seconds_bucket", (("le", "+Inf"), ("op", "a")))] == 5
    assert samples[("protoproxy_x_seconds_count", (("op", "a"),))] == 5
    assert samples[("protoproxy_bytes_total", (("direction", "upstream"), ("listener", "l")))] == 15
    assert (
        samples[("protoproxy_bytes_total", (("direction", "downstream"), ("listener", "m")))] == 7
    )


def _conn(protocol: str = "kafka") -> SimpleNamespace:
    return SimpleNamespace(id=1, protocol=protocol, listener=SimpleNamespace(name="l"))


@given(st.lists(st.lists(st.integers(0, 400), max_size=20), max_size=60))
def test_tail_is_bounded_in_count_and_bytes(batches: list[list[int]]) -> None:
    stats = Stats()
    dropped = stats.counter("d_total", "d", ("reason",))
    tail = MessageTail(Tail(enabled=True, max_messages=10, max_bytes=1000), dropped)
    conn = _conn()
    sent = []
    for sizes in batches:
        msgs = [Message(Direction.UPSTREAM, "r", b"x" * n) for n in sizes]
        sent += msgs
        assert tail.on_messages(conn, Direction.UPSTREAM, msgs) is msgs
        assert tail.count <= 10 and tail.bytes <= 1000
    entries = tail.entries()
    assert len(entries) == tail.count
    assert tail.bytes == sum(len(e.message.raw) for e in entries)
    # what is kept is the newest messages, in order, with increasing seq
    kept = [e.message for e in entries]
    assert kept == sent[len(sent) - len(kept) :]
    assert [e.seq for e in entries] == sorted({e.seq for e in entries})
    assert dropped.get(("too_large",)) == 0


def test_tail_drops_too_large_and_for_slow_followers() -> None:
    async def run() -> None:
        stats = Stats()
        dropped = stats.counter("d_total", "d", ("reason",))
        tail = MessageTail(Tail(enabled=True, max_messages=10, max_bytes=1000), dropped)
        follower = tail.follow()
        conn = _conn()
        for i in range(3000):
            msg = Message(Direction.UPSTREAM, "r", b"x" * (i % 300))
            tail.on_messages(conn, Direction.UPSTREAM, [msg])
        assert tail.count <= 10 and tail.bytes <= 1000
        big = Message(Direction.UPSTREAM, "r", b"y" * 1001)
        tail.on_messages(conn, Direction.UPSTREAM, [big])
        assert dropped.get(("too_large",)) == 1
        assert big not in [e.message for e in tail.entries()]
        assert follower.queue.qsize() == follower.queue.maxsize
        tail.unfollow(follower)
        assert dropped.get(("slow_follower",)) == follower.dropped > 0

    asyncio.run(run())


def test_scrub_text_patterns() -> None:
    cases = {
        "authorization: Bearer abc.def": "abc.def",
        "Decoded (b'authorization', b'Basic Zm9vOmJhcg==')": "Zm9vOmJhcg==",
        "(b'cookie', b'session=xyz123')": "session=xyz123",
        "password=hunter2 next": "hunter2",
        "'token': 'tk-999'": "tk-999",
    }
    for text, secret in cases.items():
        assert secret not in scrub_text(text), text
    assert scrub_text("plain words stay", ["lit-secret"]) == "plain words stay"
    assert "lit-secret" not in scrub_text("x lit-secret y", ["lit-secret"])
    pairs = header_pairs([(b"Cookie", b"a=b"), (b"host", b"h"), ("set-cookie", "c")])
    assert pairs == [["Cookie", "<redacted>"], ["host", "h"], ["set-cookie", "<redacted>"]]


def test_config_redaction_honours_secret_markers() -> None:
    from pydantic import Field

    from protoproxy.config import Model, from_dict
    from protoproxy.observe import redact

    class Inner(Model):
        credential: str | None = Field(default=None, json_schema_extra={"secret": True})
        plain: str = "shown"

    class Outer(Model):
        items: list[Inner]

    cfg = from_dict(
        {
            "admin": {"token": "t0ken-value"},
            "listeners": [{"name": "l", "listen": "127.0.0.1:0", "upstream": "u"}],
            "upstreams": [{"name": "u", "endpoints": ["127.0.0.1:1"]}],
            "faults": [
                {
                    "name": "f",
                    "match": {
                        "protocol": "http2",
                        "header": {"authorization": "Bearer fault-secret"},
                    },
                    "action": {"delay": "1ms"},
                }
            ],
        }
    )
    text = str(redact.config(cfg))
    assert "t0ken-value" not in text and "fault-secret" not in text
    data = {"items": [{"credential": "c-secret", "plain": "shown"}]}
    redact._marked(Outer(items=[Inner(credential="c-secret")]), data)
    assert data == {"items": [{"credential": "<redacted>", "plain": "shown"}]}


def test_log_redactor_scrubs_records_of_every_logger(caplog) -> None:
    LogRedactor(["literal-admin-token"]).install()
    caplog.set_level(logging.INFO)
    logging.getLogger("some.library").info(
        "sent %s with literal-admin-token", "authorization: Bearer q1w2"
    )
    text = caplog.records[-1].getMessage()
    assert "q1w2" not in text and "literal-admin-token" not in text


def test_access_log_sampling(tmp_path) -> None:
    async def run(sample: float) -> int:
        path = tmp_path / f"a{sample}.log"
        log = AccessLog(AccessLogConfig(enabled=True, path=str(path), sample=sample))
        loop = asyncio.get_running_loop()
        conn = SimpleNamespace(
            id=1,
            loop=loop,
            listener=SimpleNamespace(name="l"),
            client=SimpleNamespace(peername="127.0.0.1:1"),
            endpoint=SimpleNamespace(name="127.0.0.1:2"),
        )
        ex = [
            Exchange(
                protocol="kafka",
                operation="Produce v9",
                started=10**9,
                finished=2 * 10**9,
                status="NONE",
            )
            for _ in range(1000)
        ]
        log.observe(conn, ex)  # type: ignore[arg-type]
        log.close()
        return len(path.read_text().splitlines())

    assert asyncio.run(run(1.0)) == 1000
    assert asyncio.run(run(0.0)) == 0
    assert 300 < asyncio.run(run(0.5)) < 700


def test_access_log_to_stdout(capsys) -> None:
    async def run() -> None:
        log = AccessLog(AccessLogConfig(enabled=True, path="-"))
        conn = SimpleNamespace(
            id=3,
            loop=asyncio.get_running_loop(),
            listener=SimpleNamespace(name="l"),
            client=SimpleNamespace(peername="127.0.0.1:1"),
            endpoint=SimpleNamespace(name="127.0.0.1:2"),
        )
        attrs = {"client_id": 'we"ird', "topics": ["t1", "t2"], "record_count": 2}
        ex = Exchange(
            protocol="kafka",
            operation="Produce v9",
            started=10**9,
            finished=15 * 10**8,
            status="NONE",
            request_bytes=10,
            response_bytes=5,
            key=1,
            attrs=attrs,
        )
        log.observe(conn, [ex])  # type: ignore[arg-type]
        log.close()

    asyncio.run(run())
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1
    line = json.loads(out[0])
    # 1.5 s - 1.0 s (in ns) from the Exchange built above: rendering, not a measured time
    assert line["duration"] == 0.5 and line["conn"] == 3 and line["upstream"] == "127.0.0.1:2"
    assert line["client_id"] == 'we"ird' and line["topics"] == ["t1", "t2"]


_NS_BOUNDS = [25_000, 50_000, 100_000, 1_000_000, 30 * 10**9]
_EDGES = st.sampled_from(
    [0, 1, *_NS_BOUNDS, *(b + 1 for b in _NS_BOUNDS), *(b - 1 for b in _NS_BOUNDS)]
)


@given(st.lists(st.tuples(_EDGES, _EDGES, _EDGES, _EDGES, st.booleans()), min_size=1, max_size=30))
def test_exchange_timings_land_where_histogram_observe_puts_them(
    parts: list[tuple[int, int, int, int, bool]],
) -> None:
    """ExchangeMetrics' inlined bucket updates (a compare before bisecting for the
    proxy's own parts) give the buckets, sums and counts Histogram.observe gives."""
    from protoproxy.observe.exchanges import ExchangeMetrics

    stats = Stats()
    metrics = ExchangeMetrics(stats)
    ref = Stats()
    names = ("request_duration", "upstream_service_time", "response_duration", "proxy_time")
    conn = SimpleNamespace(id=1, listener=SimpleNamespace(name="l"), protocol="grpc")
    exchanges = []
    for req, up, resp, proxy, answered in parts:
        started = 10**12
        written = started + req
        ex = Exchange.begin("grpc", "/S/M", 1, started)
        ex.request_written = written
        ex.response_started = written + up if answered else 0
        ex.finished = (ex.response_started or written) + resp
        ex.proxy_time = proxy
        exchanges.append(ex)
        key = ("l", "grpc", "/S/M")
        for name in names:
            value = getattr(ex, name)
            if value is not None:
                ref.latency_histogram(name, "", ("a", "b", "c")).observe(key, value)
        ref.latency_histogram("duration", "", ("a", "b", "c")).observe(key, ex.duration)
    for i in range(0, len(exchanges), 4):  # several batches: the inlined path after the first
        metrics.observe(conn, exchanges[i : i + 4])  # type: ignore[arg-type]
    for name in (*names, "duration"):
        got = getattr(metrics, name).series
        fam = ref.families.get(name)
        want = fam.series if fam is not None else {}  # type: ignore[union-attr]
        assert got.keys() == want.keys(), name
        for key, s in want.items():
            g = got[key]
            assert (g.buckets, g.sum, g.count) == (s.buckets, s.sum, s.count), name
