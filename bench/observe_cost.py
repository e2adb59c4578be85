"""What observability costs: gRPC-shaped HTTP/2 calls through protoproxy with
per-exchange metrics, the access log and the message tail on vs off.

    python bench/observe_cost.py [--requests 100000] [--clients 4] [--streams 32]
                                 [--rounds 3]

The upstream is nginx over h2c answering every call at once, so the proxy is the
bottleneck. h2load sends POSTs with `content-type: application/grpc` and one gRPC
message, so the HTTP/2 codec builds one gRPC Exchange per call. Four proxies run
side by side, identical except for their `metrics:`/`access_log:`/`tail:` sections:

- off:      per-exchange metrics off, no access log, no tail (connection metrics only)
- metrics:  per-exchange metrics on (the default)
- +log:     metrics and the access log (to a file)
- +tail:    metrics, access log and the /messages ring

Rounds are interleaved so that drift in machine load hits each alike; each figure
is the best of the rounds. CPU µs per call is read from /proc/<pid>/stat, and
"CPU-bound drop" is the throughput a CPU-saturated proxy would lose
(1 - cpu_off / cpu_variant). On a shared 2-core machine calls/s swings by tens of
percent between runs, so the CPU figures are the ones to compare.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import free_port, protoproxy, table
from h2_proxy import cpu_seconds, h2load, nginx_h2c

VARIANTS: dict[str, str] = {
    "off": "metrics: {{exchanges: false}}",
    "metrics": "",
    "+log": "access_log: {{enabled: true, path: '{log}'}}",
    "+tail": "access_log: {{enabled: true, path: '{log}'}}\ntail: {{enabled: true}}",
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--streams", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    web = free_port()
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as d:
        body = Path(d) / "grpc-message"
        body.write_bytes(b"\x00\x00\x00\x00\x0a" + b"\x0a\x08abcdefgh")
        stack.enter_context(nginx_h2c(web))
        procs = {}
        for name, extra in VARIANTS.items():
            port = free_port()
            log = Path(d) / f"access-{name.strip('+')}.log"
            proc = stack.enter_context(
                protoproxy([("grpc", port, web, "http2")], extra.format(log=log))
            )
            procs[name] = (port, proc)
        warm = argparse.Namespace(**{**vars(args), "requests": 5000})
        for port, _ in procs.values():
            h2load(port, warm, "grpc", body)
        best: dict[str, float] = {}
        cpu: dict[str, float] = {}
        failed: dict[str, int] = {}
        for _ in range(args.rounds):
            for name, (port, proc) in procs.items():
                before = cpu_seconds(proc.pid)
                rate, bad = h2load(port, args, "grpc", body)
                used = (cpu_seconds(proc.pid) - before) / args.requests * 1e6
                best[name] = max(best.get(name, 0.0), rate)
                cpu[name] = min(cpu.get(name, used), used)
                failed[name] = failed.get(name, 0) + bad
        stack.close()  # stop the proxies: their access logs flush at exit
        lines = {
            name: sum(1 for _ in (Path(d) / f"access-{name.strip('+')}.log").open())
            for name in ("+log", "+tail")
        }

    base = best["off"]
    rows = [
        ("variant", "calls/s", "vs off", "proxy CPU µs/call", "CPU-bound drop", "failed"),
    ]
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
    print(
        f"Observability cost: h2load -n {args.requests} -c {args.clients} -m {args.streams} "
        f"gRPC-shaped POSTs, best of {args.rounds}, upstream nginx h2c"
    )
    print(table(rows))
    expected = args.requests * args.rounds + warm.requests
    print(f"access log lines written: {lines} (expected {expected} each)")


if __name__ == "__main__":
    main()
