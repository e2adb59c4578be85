"""What a tap costs: the data path with a tap on vs off, side by side.

    python bench/tap_cost.py [--workload h2|kafka|both] [--requests 50000]
                             [--clients 4] [--streams 32] [--rounds 3] [--writers]

Three proxies run at once, identical but for their `captures:` section:

- off:       no tap (the component installed, nothing hooked: the default)
- tap:       one tap on every listener (`captures.taps: [{}]`), redacting
- tap-raw:   the same with `redact: false` (what redaction costs on top)

Workloads (the same as bench/observe_cost.py's):

- h2: h2load gRPC-shaped POSTs to nginx over h2c: small requests, so the tap's
  per-chunk cost (one event per read and per write, four packets a request
  and its response on both legs) is as large a share as it gets;
- kafka: a pipelined raw producer (64 Produce v9 requests of 10 records in
  flight) to the testbed's fake broker in its own process.

The tap writes into a temporary folder (max_bytes is raised so a long run
never hits the budget; dropped events are printed: a figure with drops
measures a tap that skipped work). Rounds are interleaved, each figure is the
best of the rounds, and "CPU-bound drop" (1 - cpu_off / cpu_tap, CPU read
from /proc) is the steadier figure on a shared machine. The goal: at most 15%.

`--writers` also times the packet writers alone (µs per packet): scapy's
RawPcapWriter and RawPcapNgWriter, one `write` per packet, against the tap's
own struct-built pcapng blocks, one `write` per batch (protoproxy/capture/pcapng.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from common import free_port, nginx_small, protoproxy, table
from h2_proxy import cpu_seconds, h2load
from observe_cost import _produce_frames, fake_kafka, kafka_load

VARIANTS = {
    "off": "",
    "tap": "captures: {{dir: '{d}/tap', taps: [{{max_bytes: 100GiB, max_files: 2}}]}}",
    "tap-raw": "captures: {{dir: '{d}/raw', taps: [{{max_bytes: 100GiB, max_files: 2, redact: false}}]}}",
}


def measure(
    procs: dict[str, tuple[int, subprocess.Popen[bytes]]],
    rounds: int,
    requests: int,
    run: Callable[[int], tuple[float, int]],
) -> tuple[dict[str, float], dict[str, float], dict[str, int]]:
    best: dict[str, float] = {}
    cpu: dict[str, float] = {}
    failed: dict[str, int] = {}
    for _ in range(rounds):
        for name, (port, proc) in procs.items():
            before = cpu_seconds(proc.pid)
            rate, bad = run(port)
            used = (cpu_seconds(proc.pid) - before) / requests * 1e6
            best[name] = max(best.get(name, 0.0), rate)
            cpu[name] = min(cpu.get(name, used), used)
            failed[name] = failed.get(name, 0) + bad
    return best, cpu, failed


def run_workload(workload: str, args: argparse.Namespace) -> None:
    upstream = free_port()
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as d:
        if workload == "h2":
            body = Path(d) / "grpc-message"
            body.write_bytes(b"\x00\x00\x00\x00\x0a" + b"\x0a\x08abcdefgh")
            stack.enter_context(nginx_small(upstream, h2c=True))
            protocol = "http2"

            def run(port: int, n: int = args.requests) -> tuple[float, int]:
                ns = argparse.Namespace(**{**vars(args), "requests": n})
                return h2load(port, ns, "grpc", body)
        else:
            stack.enter_context(fake_kafka(upstream))
            protocol = "kafka"
            frames = _produce_frames()

            def run(port: int, n: int = args.requests) -> tuple[float, int]:
                return kafka_load(port, n, frames), 0

        procs = {}
        for name, extra in VARIANTS.items():
            port = free_port()
            proc = stack.enter_context(
                protoproxy([(workload, port, upstream, protocol)], extra.format(d=d))
            )
            procs[name] = (port, proc)
        time.sleep(0.5)
        for port, _ in procs.values():
            run(port, min(5000, args.requests))
        best, cpu, failed = measure(procs, args.rounds, args.requests, run)
        stack.close()  # the taps write what they hold as their proxies stop
        sizes = {
            name: sum(p.stat().st_size for p in (Path(d) / sub).glob("*.pcapng"))
            for name, sub in (("tap", "tap"), ("tap-raw", "raw"))
        }
    what = (
        f"h2load -n {args.requests} -c {args.clients} -m {args.streams} gRPC-shaped POSTs to nginx h2c"
        if workload == "h2"
        else f"{args.requests} Produce v9 requests (10 records, 64 in flight) to a fake broker"
    )
    rows = [("variant", "rate/s", "vs off", "proxy CPU µs/req", "CPU-bound drop", "failed")]
    for name in VARIANTS:
        rows.append(
            (
                name,
                f"{best[name]:.0f}",
                f"{best[name] / best['off']:.3f}x",
                f"{cpu[name]:.1f}",
                f"{(1 - cpu['off'] / cpu[name]) * 100:.1f}%",
                str(failed[name]),
            )
        )
    print(f"Tap cost, {workload}: {what}, best of {args.rounds}")
    print(table(rows))
    print(f"capture bytes kept (last 2 files): {json.dumps(sizes)}\n")


def writers(n: int = 50_000) -> None:
    """µs per packet of scapy's writers vs the tap's own pcapng blocks."""
    from scapy.utils import RawPcapNgWriter, RawPcapWriter

    from protoproxy.capture import pcapng
    from protoproxy.capture.packets import Endpoint, TcpLeg

    leg = TcpLeg(Endpoint("127.0.0.1", 40000), Endpoint("127.0.0.1", 9092))
    leg.handshake()
    payload = b"x" * 200
    rows = [("writer", "µs/packet (build + write)")]
    with tempfile.TemporaryDirectory() as d:
        w = RawPcapWriter(f"{d}/a.pcap", linktype=pcapng.LINKTYPE_RAW, nano=True, sync=False)
        w._write_header(None)
        t = time.perf_counter()
        for i in range(n):
            w._write_packet(leg.data(0, payload)[0], pcapng.LINKTYPE_RAW, sec=1_700_000_000, usec=i)
        rows.append(("scapy RawPcapWriter", f"{(time.perf_counter() - t) / n * 1e6:.2f}"))
        w.close()
        w2 = RawPcapNgWriter(f"{d}/b.pcapng")
        w2.linktype = pcapng.LINKTYPE_RAW
        w2._write_header(None)
        t = time.perf_counter()
        for _ in range(n):
            w2._write_packet(leg.data(0, payload)[0], linktype=pcapng.LINKTYPE_RAW, sec=1.7e9)
        rows.append(("scapy RawPcapNgWriter", f"{(time.perf_counter() - t) / n * 1e6:.2f}"))
        w2.close()
        t = time.perf_counter()
        with open(f"{d}/c.pcapng", "wb") as f:
            for _ in range(n // 1000):
                f.write(
                    b"".join(
                        pcapng.packet(0, 1_700_000_000_000_000_000 + i, leg.data(0, payload)[0], 1)
                        for i in range(1000)
                    )
                )
        rows.append(("protoproxy.capture.pcapng", f"{(time.perf_counter() - t) / n * 1e6:.2f}"))
        t = time.perf_counter()
        for _ in range(n):
            leg.data(0, payload)
        rows.append(("  of which TcpLeg.data alone", f"{(time.perf_counter() - t) / n * 1e6:.2f}"))
    print(f"Packet writers, {n} packets of 200 bytes (IPv4/TCP headers built by TcpLeg):")
    print(table(rows))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", choices=["h2", "kafka", "both"], default="both")
    ap.add_argument("--requests", type=int, default=50_000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--streams", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--writers", action="store_true")
    args = ap.parse_args()
    if args.writers:
        writers()
    for workload in ("h2", "kafka") if args.workload == "both" else (args.workload,):
        run_workload(workload, args)


if __name__ == "__main__":
    main()
