"""What observability costs: traffic through protoproxy with per-exchange metrics,
the access log and the message tail on vs off.

    python bench/observe_cost.py [--workload grpc|kafka|both] [--requests 100000]
                                 [--clients 4] [--streams 32] [--rounds 3]

Four proxies run side by side, identical except for their `metrics:`,
`access_log:` and `tail:` sections:

- off:      per-exchange metrics off, no access log, no tail (connection metrics and
            the protocol's own families only)
- metrics:  per-exchange metrics on (the default)
- full:     metrics and the access log (to a file)
- +tail:    metrics, access log and the /messages ring

Workloads:

- grpc: h2load POSTs with `content-type: application/grpc` and one gRPC message
  to nginx over h2c, which answers at once, so the proxy is the bottleneck; the
  HTTP/2 codec builds one gRPC Exchange per call.
- kafka: a raw pipelined producer (64 requests in flight, 10 records per Produce
  v9 request) through a `protocol: kafka` listener to a one-broker fake cluster
  (`python -m testbed.kafka`) in its own process. The fake broker, in Python, is
  the bottleneck here, so only the proxy's CPU per request is meaningful.

Rounds are interleaved so that drift in machine load hits each alike; each figure
is the best of the rounds. CPU µs per exchange is read from /proc/<pid>/stat, and
"CPU-bound drop" is the throughput a CPU-saturated proxy would lose
(1 - cpu_off / cpu_variant). On a shared 2-core machine rates swing by tens of
percent between runs, so the CPU figures are the ones to compare.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import free_port, nginx_small, protoproxy, table, wait_port
from h2_proxy import cpu_seconds, h2load

#: The observability levels that bench/h2_proxy.py and bench/kafka_proxy.py take
#: with `--observe`, as the proxy config each adds (`{log}`: the access log path).
#: "off" keeps the connection metrics and each protocol's own families (Kafka per
#: API, HTTP per method), which have no switch; it drops the generic per-exchange
#: families, the part that `metrics.exchanges` turns off.
OBSERVE: dict[str, str] = {
    "off": "metrics: {{exchanges: false}}",
    "metrics": "",
    "full": "access_log: {{enabled: true, path: '{log}'}}",
}
VARIANTS: dict[str, str] = {
    **OBSERVE,
    "+tail": "access_log: {{enabled: true, path: '{log}'}}\ntail: {{enabled: true}}",
}


def observe_config(level: str, log: Path) -> str:
    """The config lines for one observability level, the access log going to `log`."""
    return OBSERVE[level].format(log=log)


def observe_levels(arg: str) -> dict[str, str]:
    """`--observe off,metrics,full` -> {level: peer name}, in the order given.

    One level keeps the plain peer name "protoproxy", so a default run prints
    what it always printed.
    """
    levels = [x.strip() for x in arg.split(",") if x.strip()]
    unknown = [x for x in levels if x not in OBSERVE]
    if unknown or not levels:
        sys.exit(f"--observe: unknown level(s) {unknown}; choose from {', '.join(OBSERVE)}")
    if len(levels) == 1:
        return {levels[0]: "protoproxy"}
    return {level: f"protoproxy[{level}]" for level in dict.fromkeys(levels)}


def observe_drops(
    levels: dict[str, str],
    workloads: list[str],
    best: dict[tuple[str, str], float],
    cpu: dict[tuple[str, str], float],
    ref: str,
    ref_label: str,
    cpu_unit: str = "µs/req",
) -> str:
    """Each level's ratio to `ref` and what it lost against the first level.

    The reference peer's rate is shared by every level of a workload, so the
    ratio's drop is the throughput's drop; "CPU-bound drop" is what a proxy
    short of CPU would lose (1 - cpu_first / cpu_level), the steadier figure.
    """
    first = next(iter(levels))
    rows = [("workload", "observe", ref_label, "ratio drop", f"CPU {cpu_unit}", "CPU-bound drop")]
    for workload in workloads:
        base = best[(levels[first], workload)]
        base_cpu = cpu[(levels[first], workload)]
        ref_rate = best[(ref, workload)]
        for level, name in levels.items():
            rate, used = best[(name, workload)], cpu[(name, workload)]
            rows.append(
                (
                    workload,
                    level,
                    f"{rate / ref_rate:.3f}x",
                    f"{(1 - rate / base) * 100:+.1f}%",
                    f"{used:.3f}" if used < 1 else f"{used:.2f}",
                    f"{(1 - base_cpu / used) * 100:+.1f}%",
                )
            )
    return f"observability levels, drops against `{first}`:\n" + table(rows)


WINDOW = 64  # Kafka requests in flight


@contextlib.contextmanager
def fake_kafka(port: int) -> Iterator[subprocess.Popen[bytes]]:
    cmd = [sys.executable, "-m", "testbed.kafka", "--brokers", "1", "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "--topic", "bench:1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


def _produce_frames() -> list[bytes]:
    """WINDOW Produce v9 frames with correlation ids 0..WINDOW-1, reused in turn."""
    from kafka.record.default_records import DefaultRecordBatchBuilder

    from protoproxy_codecs.kafka import framing

    builder = DefaultRecordBatchBuilder(2, 0, False, -1, -1, -1, 1 << 20)
    for i in range(10):
        builder.append(i, 1_700_000_000_000 + i, None, b"v" * 100, [])
    batch = bytes(builder.build())
    body = {
        "acks": 1,
        "timeout_ms": 5000,
        "topic_data": [{"name": "bench", "partition_data": [{"index": 0, "records": batch}]}],
    }
    return [framing.encode_request(0, 9, corr, "bench", body) for corr in range(WINDOW)]


def kafka_load(port: int, requests: int, frames: list[bytes]) -> float:
    """Produce `requests` requests, WINDOW in flight; returns requests/s."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = bytearray()
    started = time.monotonic()
    sent = done = 0
    with sock:
        while sent < min(WINDOW, requests):
            sock.sendall(frames[sent % WINDOW])
            sent += 1
        while done < requests:
            data = sock.recv(1 << 20)
            if not data:
                raise ConnectionError("proxy closed the connection")
            buf += data
            out = []
            while len(buf) >= 4:
                (size,) = struct.unpack_from(">i", buf)
                if len(buf) < 4 + size:
                    break
                del buf[: 4 + size]
                done += 1
                if sent < requests:
                    out.append(frames[sent % WINDOW])
                    sent += 1
            if out:
                sock.sendall(b"".join(out))
    return requests / (time.monotonic() - started)


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


def report(
    title: str, best: dict[str, float], cpu: dict[str, float], failed: dict[str, int]
) -> None:
    base = best["off"]
    rows = [("variant", "rate/s", "vs off", "proxy CPU µs/exchange", "CPU-bound drop", "failed")]
    for name in VARIANTS:
        rows.append(
            (
                name,
                f"{best[name]:.0f}",
                f"{best[name] / base:.3f}x",
                f"{cpu[name]:.1f}",
                f"{(1 - cpu['off'] / cpu[name]) * 100:.1f}%",
                str(failed[name]),
            )
        )
    print(title)
    print(table(rows))


def run_workload(workload: str, args: argparse.Namespace) -> None:
    upstream = free_port()
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as d:
        if workload == "grpc":
            body = Path(d) / "grpc-message"
            body.write_bytes(b"\x00\x00\x00\x00\x0a" + b"\x0a\x08abcdefgh")
            stack.enter_context(nginx_small(upstream, h2c=True))
            protocol = "http2"

            def run(port: int, n: int = args.requests) -> tuple[float, int]:
                return h2load(
                    port, argparse.Namespace(**{**vars(args), "requests": n}), "grpc", body
                )
        else:
            stack.enter_context(fake_kafka(upstream))
            protocol = "kafka"
            frames = _produce_frames()

            def run(port: int, n: int = args.requests) -> tuple[float, int]:
                return kafka_load(port, n, frames), 0

        procs = {}
        for name, extra in VARIANTS.items():
            port = free_port()
            log = Path(d) / f"access-{name.strip('+')}.log"
            proc = stack.enter_context(
                protoproxy([(workload, port, upstream, protocol)], extra.format(log=log))
            )
            procs[name] = (port, proc)
        warm = 5000
        for port, _ in procs.values():
            run(port, warm)
        best, cpu, failed = measure(procs, args.rounds, args.requests, run)
        stack.close()  # stop the proxies: their access logs flush at exit
        lines = {
            name: sum(1 for _ in (Path(d) / f"access-{name.strip('+')}.log").open())
            for name in ("full", "+tail")
        }
    what = (
        f"h2load -n {args.requests} -c {args.clients} -m {args.streams} gRPC-shaped POSTs to nginx h2c"
        if workload == "grpc"
        else f"{args.requests} Produce v9 requests (10 records, {WINDOW} in flight) to a fake broker"
    )
    report(f"Observability cost, {workload}: {what}, best of {args.rounds}", best, cpu, failed)
    expected = args.requests * args.rounds + warm
    print(f"access log lines written: {lines} (expected {expected} each)\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", choices=["grpc", "kafka", "both"], default="both")
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--streams", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    for workload in ("grpc", "kafka") if args.workload == "both" else (args.workload,):
        run_workload(workload, args)


if __name__ == "__main__":
    main()
