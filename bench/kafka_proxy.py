"""librdkafka produce rate direct to the fake cluster vs through the proxy, same run.

Three processes, so no two share a GIL: the fake cluster (uvloop), the proxy
(`protoproxy run`, Kafka listener with per-broker listeners) and a
confluent-kafka producer. Each measured run produces `--records` records of
`--size` bytes (acks=all, idempotent, 6 partitions); direct and proxied runs
alternate `--rounds` times and the best of each is compared, because the
machine is shared. Prints records/s both ways, the ratio (goal: >= 0.9), the
proxy's CPU seconds, and the codec decode rate from bench/kafka_decode.py.

    python bench/kafka_proxy.py [--records 1000000] [--size 100] [--rounds 2]
                                [--observe off,metrics,full] [--access-log /tmp/a.log]

`--observe` runs one proxy per observability level (off: no per-exchange
metrics; metrics: the default config; full: metrics and the access log), all
in the same alternating rounds, and prints each level's ratio to direct, its
drop against the first level listed, and the proxy's CPU µs per record.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT / "codecs"), str(ROOT)]  # this checkout, not an install

from common import free_port, wait_port  # noqa: E402
from h2_proxy import cpu_seconds  # noqa: E402

_CLUSTER = textwrap.dedent(
    """
    import asyncio, sys, uvloop
    from testbed.kafka import FakeKafkaCluster
    ports = [int(p) for p in sys.argv[1].split(",")]
    async def main():
        async with FakeKafkaCluster(brokers=len(ports), ports=ports, seed=1,
                                    retention_bytes=64 * 1024 * 1024) as c:
            c.create_topic("bench", 6)
            print("ready", flush=True)
            await asyncio.Event().wait()
    uvloop.run(main())
    """
)

_PRODUCER = textwrap.dedent(
    """
    import json, sys, time
    from confluent_kafka import Producer
    bootstrap, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                  "enable.idempotence": True, "batch.size": 1000000,
                  "socket.nagle.disable": True, "queue.buffering.max.messages": 1000000})
    value = b"x" * size
    for _ in range(6):
        p.produce("bench", value=value)  # connect to every leader before timing
    p.flush(10)
    errors = []
    def report(err, msg):
        if err is not None:
            errors.append(str(err))
    produce, poll = p.produce, p.poll
    start = time.perf_counter()
    for i in range(n):
        try:
            produce("bench", value=value, on_delivery=report)
        except BufferError:
            poll(0.001)
            produce("bench", value=value, on_delivery=report)
        if i % 1000 == 0:
            poll(0)
    left = p.flush(120)
    elapsed = time.perf_counter() - start
    print(json.dumps({"elapsed": elapsed, "left": left, "errors": errors[:3]}))
    """
)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "codecs"), str(ROOT), env.get("PYTHONPATH", "")]
    )
    return env


def produce(bootstrap: str, records: int, size: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _PRODUCER, bootstrap, str(records), str(size)],
        capture_output=True,
        check=True,
        env=_env(),
        timeout=600,
    ).stdout
    result = json.loads(out)
    if result["left"] or result["errors"]:
        sys.exit(f"producer failed: {result}")
    return records / result["elapsed"]


def proxy_config(port: int, brokers: list[int], path: Path, extra: str = "") -> None:
    endpoints = ", ".join(f"'127.0.0.1:{p}'" for p in brokers)
    path.write_text(
        textwrap.dedent(
            f"""
            admin: {{enabled: false}}
            listeners:
              - {{name: kafka, listen: '127.0.0.1:{port}', protocol: kafka, upstream: kafka}}
            upstreams:
              - {{name: kafka, endpoints: [{endpoints}]}}
            """
        )
        + extra
        + "\n"
    )


def _spy(pid: int, out: Path, round_no: int) -> subprocess.Popen[bytes]:
    target = out.with_name(f"{out.stem}.{round_no}{out.suffix}")
    return subprocess.Popen(
        ["py-spy", "record", "-p", str(pid), "-f", "raw", "-r", "250", "-o", str(target)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def decode_rate() -> str:
    script = HERE / "kafka_decode.py"
    if not script.exists():
        return "(bench/kafka_decode.py not found)"
    out = subprocess.run(
        [sys.executable, str(script), "--seconds", "1"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    return out.stdout.strip() or out.stderr.strip()


def filter_cost(pairs: int = 20000) -> str:
    """µs per Produce request/response pair: codec alone vs codec + Kafka filter + metrics.

    In-process and CPU-timed, best of three: the part of the proxy's per-message
    cost that the Kafka runtime adds on top of the codec.
    """
    from types import SimpleNamespace

    from kafka.record.memory_records import MemoryRecordsBuilder

    from protoproxy.kafka.filter import KafkaFilter
    from protoproxy.kafka.metrics import KafkaMetrics
    from protoproxy.observe.stats import Stats
    from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM
    from protoproxy_codecs.kafka import KafkaCodec, framing

    builder = MemoryRecordsBuilder(2, 0, batch_size=1 << 30)
    for i in range(10):
        builder.append(1_700_000_000_000 + i, b"k", b"x" * 70)
    builder.close()
    batch = bytes(builder.buffer())
    data = [{"name": "t", "partition_data": [{"index": 0, "records": batch}]}]
    acks = [{"name": "t", "partition_responses": [{"index": 0, "base_offset": 5}]}]
    reqs = [
        framing.encode_request(0, 9, c, "bench", {"acks": -1, "timeout_ms": 1, "topic_data": data})
        for c in range(pairs)
    ]
    resps = [framing.encode_response(0, 9, c, {"responses": acks}) for c in range(pairs)]
    metrics = KafkaMetrics(Stats())
    filt = KafkaFilter(metrics, None, None)

    class Delivered:  # an outlet whose bytes have always left: records count at once
        def when_sent(self, callback: Callable[[], None]) -> None:
            callback()

    conn = SimpleNamespace(
        listener=SimpleNamespace(name="kafka"),
        extra={},
        id=1,
        protocol="kafka",
        outlets=[Delivered(), Delivered()],
    )

    def run(with_filter: bool) -> float:
        codec = KafkaCodec()
        conn.codec = codec  # the metrics read its pending count
        start = time.process_time()
        for req, resp in zip(reqs, resps, strict=True):
            up = codec.feed(UPSTREAM, req)
            down = codec.feed(DOWNSTREAM, resp)
            done = codec.take_exchanges()
            if with_filter:
                filt.on_messages(conn, UPSTREAM, up)  # type: ignore[arg-type]
                filt.on_messages(conn, DOWNSTREAM, down)  # type: ignore[arg-type]
                metrics.on_exchanges(conn, done)  # type: ignore[arg-type]
        return (time.process_time() - start) / pairs * 1e6

    codec_only = min(run(False) for _ in range(3))
    full = min(run(True) for _ in range(3))
    return (
        f"Produce v9 pair (1 KB batch): codec {codec_only:.2f} µs, "
        f"codec + Kafka filter + metrics {full:.2f} µs (+{full - codec_only:.2f} µs)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-decode", action="store_true", help="skip the codec decode bench")
    ap.add_argument(
        "--profile",
        type=Path,
        help="py-spy the proxy during proxied runs; write collapsed stacks here",
    )
    ap.add_argument(
        "--observe",
        default="metrics",
        help="comma-separated observability levels, one proxy each: off, metrics "
        "(the default config), full (metrics + access log); see bench/observe_cost.py",
    )
    ap.add_argument(
        "--access-log",
        type=Path,
        help="access log file of the `full` level, replaced (default: temp)",
    )
    args = ap.parse_args()
    from observe_cost import observe_config, observe_drops, observe_levels

    levels = observe_levels(args.observe)
    names = list(levels.values())

    brokers = [free_port() for _ in range(3)]
    with tempfile.TemporaryDirectory() as d:
        log = args.access_log or Path(d) / "access.log"
        log.unlink(missing_ok=True)  # count this run's lines only
        cluster = subprocess.Popen(
            [sys.executable, "-c", _CLUSTER, ",".join(map(str, brokers))],
            stdout=subprocess.PIPE,
            env=_env(),
        )
        proxies: dict[str, tuple[int, subprocess.Popen[bytes]]] = {}
        try:
            assert cluster.stdout is not None
            if cluster.stdout.readline().strip() != b"ready":
                sys.exit("fake cluster did not start")
            for level, name in levels.items():
                port = free_port()
                cfg = Path(d) / f"kafka-{level}.yaml"
                proxy_config(port, brokers, cfg, observe_config(level, log))
                proxies[name] = (
                    port,
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "protoproxy",
                            "--log-level",
                            "error",
                            "run",
                            str(cfg),
                        ],
                        env=_env(),
                        cwd=str(ROOT),
                    ),
                )
                wait_port(port)
            rates: dict[str, list[float]] = {name: [] for name in ["direct", *names]}
            cpu: dict[str, float] = {}
            for r in range(args.rounds):
                # Alternate the order, so warm-up and log growth favour no one.
                order = ["direct", *names] if r % 2 == 0 else [*reversed(names), "direct"]
                for which in order:
                    if which == "direct":
                        rates[which].append(
                            produce(f"127.0.0.1:{brokers[0]}", args.records, args.size)
                        )
                        continue
                    port, proxy = proxies[which]
                    before = cpu_seconds(proxy.pid)
                    spy = None
                    if args.profile:
                        out = args.profile
                        if len(names) > 1:  # one set of files per level
                            level = which.partition("[")[2].rstrip("]")
                            out = out.with_name(f"{out.stem}.{level}{out.suffix}")
                        spy = _spy(proxy.pid, out, r)
                    rates[which].append(produce(f"127.0.0.1:{port}", args.records, args.size))
                    used = (cpu_seconds(proxy.pid) - before) / args.records * 1e6
                    cpu[which] = min(cpu.get(which, used), used)
                    if spy is not None:
                        spy.send_signal(2)
                        spy.wait(30)
                print(
                    f"round {r + 1}: "
                    + ", ".join(f"{n} {rates[n][-1]:,.0f} rec/s" for n in ["direct", *names]),
                    flush=True,
                )
        finally:
            for _, proxy in proxies.values():
                proxy.terminate()
                proxy.wait(10)
            cluster.terminate()
            cluster.wait(10)
        lines = sum(1 for _ in log.open()) if "full" in levels and log.exists() else None
    mb = args.size / 1e6
    best = {name: max(r) for name, r in rates.items()}
    median = {name: statistics.median(r) for name, r in rates.items()}
    print(f"records: {args.records:,} x {args.size} B, acks=all, idempotent, 6 partitions")
    for name in ["direct", *names]:
        label = "proxied" if name == "protoproxy" else name
        print(f"{label + ':':<21}{best[name]:>12,.0f} records/s  {best[name] * mb:6.1f} MB/s")
    for name in names:
        label = "proxied" if name == "protoproxy" else name
        print(
            f"ratio {label}/direct: {best[name] / best['direct']:.2f} best-of-{args.rounds}, "
            f"{median[name] / median['direct']:.2f} median (goal >= 0.90); "
            f"proxy CPU {cpu[name]:.3f} µs/record (least of the rounds)"
        )
    if len(levels) > 1:
        keyed_best = {(n, "produce"): best[n] for n in best}
        keyed_cpu = {(n, "produce"): cpu[n] for n in cpu}
        print(
            observe_drops(
                levels, ["produce"], keyed_best, keyed_cpu, "direct", "vs direct", "µs/record"
            )
        )
    if lines is not None:
        per_run = lines / args.rounds
        print(
            f"access log ({log}): {lines} lines, one per request: ~{per_run:.0f} requests "
            f"a run, so proxy CPU µs/request "
            + ", ".join(f"{n} {cpu[n] * args.records / per_run:.1f}" for n in names)
        )
    print("\nper-message cost (in-process):")
    print(filter_cost())
    if not args.no_decode:
        print("\ncodec decode rate (bench/kafka_decode.py --seconds 1):")
        print(decode_rate())


if __name__ == "__main__":
    main()
