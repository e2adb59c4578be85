"""Every attack bench against a protoproxy subprocess, one table row each.

    python bench/attacks.py [--only NAME ...] [--scale 1.0] [--h2-seconds 5]

Three families share the table (columns: attack, rate, the proxy's RSS
before/peak/after, the latency another listener saw, the reaction):

* the resource attacks here (`ATTACKS`: partial Kafka frames, slowloris);
* ``connection_flood``: bench/attacks_connections.py's `measure` (20,000
  held connections on a capped TCP listener; latency is the HTTP listener's
  while the flood is held, the worst of the echo/HTTP/admin probes in
  brackets; peak is VmHWM);
* ``h2_*``: bench/attacks_http2.py's floods (rapid reset, PING,
  WINDOW_UPDATE, SETTINGS, empty DATA, CONTINUATION, HPACK bomb, request
  burst), each at most ``--h2-seconds`` on one connection, latency from a
  prober on a second HTTP/2 listener.

`--scale` multiplies the connection counts (1,500 / 2,000 / 20,000) for a
shorter run; the HTTP/2 floods do not scale (they end at GOAWAY).

Each attack in `ATTACKS` runs against a fresh `protoproxy run` with the
default limits (limits.memory 1 GiB, timeouts.header 10 s, timeouts.frame
30 s) unless the attack sets its own. While it runs, a probe sends one HTTP/1
request every 100 ms on another listener. The table shows the attack and its
rate, the proxy's RSS before, at peak and after, the probe's median and worst
latency (the probe runs in a process of its own), and how the proxy reacted
(from its /metrics).

Acceptance (issue 12): 1,500 connections holding partial Kafka frames keep
the RSS under limits.memory + 200 MiB and are closed by timeouts.frame;
2,000 slowloris connections are closed at timeouts.header.

To add an attack: write an ``async def attack(ctx: Ctx) -> Outcome`` and add
it to `ATTACKS` (with the YAML it needs in `Attack.extra`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import attacks_connections
import attacks_http2
from common import free_port, rss, table, wait_port

MiB = 1024 * 1024
HTTP_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


# -- peers: upstreams on one loop in a thread ------------------------------------------


async def _http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while await reader.readuntil(b"\r\n\r\n"):
            writer.write(HTTP_OK)
            await writer.drain()
    writer.close()


async def _kafka(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers any request with an ApiVersions v0 response (error 0, no APIs)."""
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while True:
            size = int.from_bytes(await reader.readexactly(4), "big")
            body = await reader.readexactly(size)
            answer = body[4:8] + bytes(6)
            writer.write(len(answer).to_bytes(4, "big") + answer)
            await writer.drain()
    writer.close()


class Upstreams:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.http_port, self.kafka_port = asyncio.run_coroutine_threadsafe(
            self._start(), self.loop
        ).result(10)

    async def _start(self) -> tuple[int, int]:
        ports = []
        for handler in (_http, _kafka):
            server = await asyncio.start_server(handler, "127.0.0.1", 0, backlog=4096)
            ports.append(server.sockets[0].getsockname()[1])
        return ports[0], ports[1]


# -- the proxy under attack ----------------------------------------------------------


@dataclass
class Ctx:
    """What an attack gets: the proxy's ports and a way to read its metrics."""

    ports: dict[str, int]
    admin: int
    pid: int
    scale: float

    def n(self, conns: int) -> int:
        return max(1, int(conns * self.scale))

    async def metrics(self) -> dict[str, float]:
        """``name{labels}`` -> value from the proxy's /metrics."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.admin)
        # The admin API's host rule refuses a Host that is not loopback (DNS rebinding).
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        text = (await reader.read()).decode()
        if not text.startswith("HTTP/1.1 200 "):
            raise RuntimeError(f"/metrics answered {text.splitlines()[:1]}")
        writer.close()
        out = {}
        for line in text.splitlines():
            m = re.match(r"^(protoproxy_[a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)$", line)
            if m:
                out[m.group(1)] = float(m.group(2))
        return out


@dataclass
class Outcome:
    rate: str
    reaction: str


@dataclass
class Attack:
    name: str
    run: Callable[[Ctx], Awaitable[Outcome]]
    #: YAML lines appended to the proxy's config (limits, timeouts)
    extra: str = ""


@contextlib.contextmanager
def proxy(ups: Upstreams, extra: str) -> Iterator[tuple[subprocess.Popen[bytes], Ctx]]:
    ports = {"kafka": free_port(), "http": free_port(), "probe": free_port()}
    admin = free_port()
    cfg = f"""
admin: {{listen: '127.0.0.1:{admin}'}}
listeners:
  - {{name: kafka, listen: '127.0.0.1:{ports["kafka"]}', protocol: kafka, upstream: broker}}
  - {{name: http, listen: '127.0.0.1:{ports["http"]}', protocol: http, upstream: web}}
  - {{name: probe, listen: '127.0.0.1:{ports["probe"]}', protocol: http, upstream: web}}
upstreams:
  - {{name: broker, endpoints: ['127.0.0.1:{ups.kafka_port}']}}
  - {{name: web, endpoints: ['127.0.0.1:{ups.http_port}']}}
{extra}
"""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "attack.yaml"
        path.write_text(cfg)
        args = [sys.executable, "-m", "protoproxy", "--log-level", "error", "run", str(path)]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for port in (*ports.values(), admin):
                wait_port(port)
            yield proc, Ctx(ports, admin, proc.pid, 1.0)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


# -- helpers for attacks ----------------------------------------------------------------


@dataclass
class Crowd:
    """Connections of one attack: how many are open, and what closed ones got."""

    opened: int = 0
    closed: int = 0
    replies: list[bytes] = field(default_factory=list)
    sent: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)


async def trickle(
    crowd: Crowd, port: int, setup: bytes, drip: bytes, every: float, total: int
) -> None:
    """Send `setup`, then one byte of `drip` per `every` s until the proxy closes."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        crowd.closed += 1
        crowd.replies.append(b"<connect failed>")
        return
    crowd.opened += 1
    got = b""
    try:
        view = memoryview(setup)
        for i in range(0, len(view), 65536):
            writer.write(view[i : i + 65536])
            await writer.drain()
            crowd.sent += len(view[i : i + 65536])
        i = 0
        while True:
            writer.write(drip[i % len(drip) : i % len(drip) + 1])
            i += 1
            with contextlib.suppress(TimeoutError):
                data = await asyncio.wait_for(reader.read(65536), every)
                if not data:
                    break
                got += data
    except OSError:
        pass
    crowd.closed += 1
    crowd.replies.append(got)
    if crowd.closed == total:
        crowd.done.set()
    writer.close()


async def until(pred: Callable[[], bool], timeout: float) -> float:
    start = time.monotonic()
    while not pred():
        if time.monotonic() - start > timeout:
            break
        await asyncio.sleep(0.1)
    return time.monotonic() - start


# -- the attacks ------------------------------------------------------------------------


async def kafka_partial_frames(ctx: Ctx) -> Outcome:
    """Valid 16 MiB frame headers, 1 MiB of body at once, then one byte a second."""
    n = ctx.n(1500)
    body = b"\x00\x00\x00\x09\x00\x00\x00\x01\x00\x04test"  # Produce v9 header
    setup = (16 * MiB).to_bytes(4, "big") + body + bytes(MiB - len(body))
    crowd = Crowd()
    start = time.monotonic()
    tasks = [
        asyncio.create_task(trickle(crowd, ctx.ports["kafka"], setup, b"\0", 1.0, n))
        for _ in range(n)
    ]
    took = await until(lambda: crowd.closed == n, 120)
    await asyncio.gather(*tasks, return_exceptions=True)
    m = await ctx.metrics()
    shed = m.get('protoproxy_memory_shed_total{listener="kafka"}', 0)
    frame = m.get('protoproxy_deadline_timeouts_total{listener="kafka",timeout="frame"}', 0)
    sent = crowd.sent / MiB
    return Outcome(
        f"{n} conns, {sent:.0f} MiB sent in {time.monotonic() - start:.0f}s",
        f"shed {shed:.0f}, frame_timeout {frame:.0f}; all {crowd.closed} closed in {took:.1f}s",
    )


async def http1_slowloris(ctx: Ctx) -> Outcome:
    """A request line and a header name, then one byte every 2 s."""
    n = ctx.n(2000)
    crowd = Crowd()
    drip = b"a" * 4096
    setup = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "
    tasks = []
    for _ in range(n):
        tasks.append(asyncio.create_task(trickle(crowd, ctx.ports["http"], setup, drip, 2.0, n)))
        await asyncio.sleep(0)  # spread the connects a little
    took = await until(lambda: crowd.closed == n, 120)
    await asyncio.gather(*tasks, return_exceptions=True)
    m = await ctx.metrics()
    header = m.get('protoproxy_deadline_timeouts_total{listener="http",timeout="header"}', 0)
    got_408 = sum(r.startswith(b"HTTP/1.1 408 ") for r in crowd.replies)
    return Outcome(
        f"{n} conns, 1 B / 2 s each",
        f"header_timeout {header:.0f}, {got_408} got 408; all {crowd.closed} closed in {took:.1f}s",
    )


ATTACKS: list[Attack] = [
    Attack("kafka_partial_frames", kafka_partial_frames),
    Attack("http1_slowloris", http1_slowloris),
]


# -- the run ----------------------------------------------------------------------------


async def probe(port: int, stop: Callable[[], bool], latencies: list[float]) -> None:
    """One HTTP/1 request per 100 ms on a listener nobody attacks."""
    while not stop():
        start = time.monotonic()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await asyncio.wait_for(reader.readexactly(len(HTTP_OK)), 30)
            writer.close()
            latencies.append(time.monotonic() - start)
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            latencies.append(float("inf"))
        await asyncio.sleep(0.1)


def _probe_process(port: int, stop: Any, out: Any) -> None:
    """The probe in a process of its own: the attacker's loop (and GIL) stalls
    would otherwise show up as the proxy's latency."""
    latencies: list[float] = []
    asyncio.run(probe(port, stop.is_set, latencies))
    out.put(latencies)


async def run_one(attack: Attack, ctx: Ctx) -> tuple[str, ...]:
    before = rss(ctx.pid)
    peak = before
    stop = asyncio.Event()
    mp = multiprocessing.get_context("fork")
    probe_stop, probe_out = mp.Event(), mp.Queue()
    prober = mp.Process(target=_probe_process, args=(ctx.ports["probe"], probe_stop, probe_out))
    prober.start()

    async def watch() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, rss(ctx.pid))
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch())
    outcome = await attack.run(ctx)
    await asyncio.sleep(1)  # let the proxy let go, then read "after"
    stop.set()
    probe_stop.set()
    latencies: list[float] = probe_out.get(timeout=60)
    prober.join(10)
    await watcher
    after = rss(ctx.pid)
    lat = sorted(latencies)
    median = statistics.median(lat) * 1000 if lat else float("nan")
    worst = lat[-1] * 1000 if lat else float("nan")
    return (
        attack.name,
        outcome.rate,
        f"{before / MiB:.0f}/{peak / MiB:.0f}/{after / MiB:.0f}",
        f"{median:.1f}/{worst:.1f}",
        outcome.reaction,
    )


def connection_flood(scale: float) -> tuple[str, ...]:
    """attacks_connections' flood as one row of the table."""
    f = attacks_connections.measure(connections=max(4, int(20000 * scale)))
    http = f.during_held["http listener"]
    worst = max(v[1] for v in f.during_held.values())
    failed = sum(v[2] for v in f.during_held.values())
    rejected = sum(f.series("protoproxy_connections_rejected_total").values())
    lines = f.log.splitlines()
    return (
        "connection_flood",
        f"{f.connections} conns held on one listener (cap {f.cap}) in {f.seconds:.1f}s",
        f"{f.rss_before:.0f}/{f.rss_peak:.0f}/{f.rss_after:.0f}",
        f"{http[0]:.1f}/{http[1]:.1f} (worst probe {worst:.1f}"
        + (f", {failed} failed)" if failed else ")"),
        f"{f.held} held, {rejected:.0f} rejected; log {len(lines)} lines "
        f"({sum('suppressed' in line for line in lines)} 'suppressed')",
    )


def names() -> list[str]:
    return [a.name for a in ATTACKS] + ["connection_flood", *attacks_http2.ATTACKS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", action="append", choices=names(), help="attacks to run")
    parser.add_argument("--scale", "--conns-scale", type=float, default=1.0)
    parser.add_argument("--h2-seconds", type=float, default=5.0)
    args = parser.parse_args()
    chosen = set(args.only or names())
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the child inherits it
    rows = [
        ("attack", "rate", "RSS MiB before/peak/after", "other listener ms p50/max", "reaction")
    ]
    ups = Upstreams()
    for attack in ATTACKS:
        if attack.name not in chosen:
            continue
        with proxy(ups, attack.extra) as (_proc, ctx):
            ctx.scale = args.scale
            rows.append(asyncio.run(run_one(attack, ctx)))
        print(table(rows[-1:]), flush=True)
    if "connection_flood" in chosen:
        rows.append(connection_flood(args.scale))
        print(table(rows[-1:]), flush=True)
    h2 = [name for name in attacks_http2.ATTACKS if name in chosen]
    if h2:
        for key, row in zip(h2, attacks_http2.run(args.h2_seconds, only=h2), strict=True):
            rows.append((key, *row[1:]))
            print(table(rows[-1:]), flush=True)
    print()
    print(table(rows))


if __name__ == "__main__":
    main()
