"""Connection-flood attack: many held connections on one listener, the others measured.

    python bench/attacks_connections.py [--connections 20000] [--cap 1000] [--workers 4]
                                        [--max-connections 5000]

One `protoproxy run` child serves a flooded TCP listener (``max_connections:
--cap``), an echo TCP listener, an HTTP listener and the admin API. Worker
processes open ``--connections`` connections to the flooded listener and hold
them; meanwhile the bench times round trips on the other listeners and the
admin API, before and during the flood. It prints the proxy's RSS, those
latencies, the refusals the proxy counted, and how many log lines (and bytes)
the flood cost.

bench/attacks.py runs `measure` for its `connection_flood` row; this entry
point prints the flood's fuller picture.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import free_port, rss, table, wait_port

HTTP_REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


# -- upstreams: one asyncio loop in a thread ------------------------------------------
async def _hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # until the proxy closes
    writer.close()


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
    writer.close()


async def _http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
        while True:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(HTTP_REPLY)
    writer.close()


def start_upstreams() -> dict[str, int]:
    ports: dict[str, int] = {}
    ready = threading.Event()

    async def main() -> None:
        for name, handler in (("hold", _hold), ("echo", _echo), ("web", _http)):
            server = await asyncio.start_server(handler, "127.0.0.1", 0, backlog=4096)
            ports[name] = server.sockets[0].getsockname()[1]
        ready.set()
        await asyncio.Event().wait()

    threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()
    ready.wait(10)
    return ports


# -- the flood: worker processes holding connections ------------------------------------
def _flood_worker(port: int, n: int, hold: float, out: multiprocessing.Queue[int]) -> None:
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    socks: list[socket.socket] = []
    failed = 0
    for _ in range(n):
        s = socket.socket()
        s.settimeout(5)
        try:
            s.connect(("127.0.0.1", port))
            socks.append(s)
        except OSError:
            failed += 1
            s.close()
    out.put(len(socks))
    time.sleep(hold)
    for s in socks:
        s.close()


# -- probes ---------------------------------------------------------------------------
def _echo_rtt(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"ping")
        assert s.recv(16) == b"ping"


def _http_rtt(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while not got.endswith(b"ok"):
            chunk = s.recv(4096)
            assert chunk, got
            got += chunk


def _admin_rtt(url: str) -> None:
    with urllib.request.urlopen(url + "/healthz", timeout=10) as resp:
        assert resp.status == 200


def latency(fn: Callable[[], None], n: int = 30) -> tuple[float, float, int]:
    """Median and max ms of `n` calls, and how many failed."""
    times, failed = [], 0
    for _ in range(n):
        t0 = time.perf_counter()
        try:
            fn()
        except (OSError, AssertionError):
            failed += 1
            continue
        times.append((time.perf_counter() - t0) * 1000)
    if not times:
        return float("nan"), float("nan"), failed
    return statistics.median(times), max(times), failed


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MiB: now, and the peak since the proxy started."""
    return rss(pid) / 2**20, rss(pid, "VmHWM") / 2**20


@contextlib.contextmanager
def proxy(cfg: dict[str, object], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "flood.yaml"
        path.write_text(json.dumps(cfg))
        with log.open("wb") as err:
            p = subprocess.Popen(
                [sys.executable, "-m", "protoproxy", "--log-level", "warning", "run", str(path)],
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
            try:
                yield p
            finally:
                p.terminate()
                p.wait(10)


Latency = tuple[float, float, int]  # median ms, max ms, failed


@dataclass
class Flood:
    """What one flood run measured."""

    connections: int
    cap: int
    max_connections: int
    held: int
    seconds: float
    before: dict[str, Latency]
    during: dict[str, Latency]
    during_held: dict[str, Latency]
    rss_before: float  # MiB
    rss_during: float
    rss_peak: float
    rss_after: float
    metrics: str
    log: str

    def series(self, name: str) -> dict[str, float]:
        out = {}
        for m in re.finditer(rf"^{name}\{{(.*)\}} (\S+)$", self.metrics, re.M):
            out[m.group(1)] = float(m.group(2))
        return out


def measure(
    connections: int = 20000, cap: int = 1000, workers: int = 4, max_connections: int = 5000
) -> Flood:
    """Run one flood against a fresh proxy child (see the module docstring)."""
    up = start_upstreams()
    ports = {name: free_port() for name in ("flood", "echo", "web", "admin")}
    cfg = {
        "admin": {"listen": f"127.0.0.1:{ports['admin']}"},
        "limits": {"max_connections": max_connections},
        "listeners": [
            {
                "name": "flood",
                "listen": f"127.0.0.1:{ports['flood']}",
                "protocol": "tcp",
                "upstream": "hold",
                **({"max_connections": cap} if cap else {}),
            },
            {"name": "echo", "listen": f"127.0.0.1:{ports['echo']}", "protocol": "tcp"},
            {"name": "web", "listen": f"127.0.0.1:{ports['web']}", "protocol": "http"},
        ],
        "upstreams": [
            {"name": n, "endpoints": [f"127.0.0.1:{up[n]}"]} for n in ("hold", "echo", "web")
        ],
    }
    cfg["listeners"][1]["upstream"] = "echo"  # type: ignore[index]
    cfg["listeners"][2]["upstream"] = "web"  # type: ignore[index]
    admin = f"http://127.0.0.1:{ports['admin']}"
    probes: dict[str, Callable[[], None]] = {
        "echo listener": lambda: _echo_rtt(ports["echo"]),
        "http listener": lambda: _http_rtt(ports["web"]),
        "admin /healthz": lambda: _admin_rtt(admin),
    }
    with tempfile.TemporaryDirectory() as d:
        log = Path(d) / "stderr.log"
        with proxy(cfg, log) as p:
            for port in ports.values():
                wait_port(port)
            before = {name: latency(fn) for name, fn in probes.items()}
            rss_before = rss_mb(p.pid)
            q: multiprocessing.Queue[int] = multiprocessing.Queue()
            per = connections // workers
            t0 = time.monotonic()
            flooders = [
                multiprocessing.Process(target=_flood_worker, args=(ports["flood"], per, 60, q))
                for _ in range(workers)
            ]
            for w in flooders:
                w.start()
            during = {name: latency(fn) for name, fn in probes.items()}
            held = sum(q.get(timeout=300) for _ in flooders)
            flood_s = time.monotonic() - t0
            during_held = {name: latency(fn) for name, fn in probes.items()}
            rss_during = rss_mb(p.pid)
            with urllib.request.urlopen(admin + "/metrics", timeout=10) as resp:
                metrics = resp.read().decode()
            for w in flooders:
                w.terminate()
                w.join(10)
            time.sleep(1)  # let the proxy let go of the closed connections
            rss_after = rss_mb(p.pid)
        text = log.read_text()
    return Flood(
        connections,
        cap,
        max_connections,
        held,
        flood_s,
        before,
        during,
        during_held,
        rss_before[0],
        rss_during[0],
        rss_after[1],
        rss_after[0],
        metrics,
        text,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=20000)
    ap.add_argument("--cap", type=int, default=1000, help="0: no per-listener cap")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--max-connections", type=int, default=5000, help="limits.max_connections")
    args = ap.parse_args()
    f = measure(args.connections, args.cap, args.workers, args.max_connections)
    print(
        f"flood: {f.connections} connections on one listener "
        f"(max_connections {f.cap or 'unset'}, limits.max_connections {f.max_connections}), "
        f"{f.held} connected and held, in {f.seconds:.1f}s"
    )
    rows = [("probe (ms median / max)", "before", "while flooding", "flood held")] + [
        (
            name,
            f"{f.before[name][0]:.2f} / {f.before[name][1]:.1f} ({f.before[name][2]} failed)",
            f"{f.during[name][0]:.2f} / {f.during[name][1]:.1f} ({f.during[name][2]} failed)",
            f"{f.during_held[name][0]:.2f} / {f.during_held[name][1]:.1f} "
            f"({f.during_held[name][2]} failed)",
        )
        for name in f.before
    ]
    print(table(rows))
    print(f"proxy RSS MB: before {f.rss_before:.1f}, during {f.rss_during:.1f}")
    print(f"peak RSS MB: {f.rss_peak:.1f}")
    print("rejected:", f.series("protoproxy_connections_rejected_total"))
    print("accept errors:", f.series("protoproxy_accept_errors_total"))
    print("active:", f.series("protoproxy_connections_active"))
    lines = f.log.splitlines()
    print(
        f"log: {len(lines)} lines, {len(f.log.encode())} bytes, "
        f"{sum('suppressed' in line for line in lines)} 'suppressed' lines"
    )


if __name__ == "__main__":
    main()
