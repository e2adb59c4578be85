"""Bulk throughput and small request/response rate: direct vs protoproxy vs HAProxy.

    python bench/tcp.py [--seconds 4] [--haproxy-threads 1]

iperf3 measures bulk TCP throughput; wrk measures small HTTP request/response
rate against nginx (protoproxy in tcp mode, HAProxy in tcp mode). All peers
run side by side in one run on loopback and the script prints ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import free_port, haproxy, need, nginx_small, process, protoproxy, table, wait_port


def iperf(port: int, seconds: float, tries: int = 3) -> float:
    """Receiver-side Gbit/s; retried, since iperf3's server is single-test and can be busy."""
    for attempt in range(tries):
        try:
            return _iperf_once(port, seconds)
        except RuntimeError:
            if attempt == tries - 1:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


def _iperf_once(port: int, seconds: float) -> float:
    out = subprocess.run(
        [need("iperf3"), "-c", "127.0.0.1", "-p", str(port), "-t", str(int(seconds)), "-J"],
        capture_output=True,
        text=True,
    )
    data = json.loads(out.stdout)
    if "error" in data:
        raise RuntimeError(f"iperf3 via port {port}: {data['error']}")
    return float(data["end"]["sum_received"]["bits_per_second"]) / 1e9


def wrk(port: int, seconds: float, conns: int) -> float:
    out = subprocess.run(
        [need("wrk"), "-t1", f"-c{conns}", f"-d{int(seconds)}s", f"http://127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
        check=True,
    )
    match = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out.stdout)
    if errors:
        print(f"  wrk on {port}: {errors.group(0)}", file=sys.stderr)
    assert match, out.stdout
    return float(match.group(1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--haproxy-threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    iperf_port, web_port = free_port(), free_port()
    pp_bulk, pp_rr, ha_bulk, ha_rr = (free_port() for _ in range(4))
    with contextlib.ExitStack() as stack:
        # Proxies first: their readiness probes must not reach iperf3, which
        # takes any connection for a test's control channel.
        stack.enter_context(
            protoproxy([("bulk", pp_bulk, iperf_port, "tcp"), ("rr", pp_rr, web_port, "tcp")])
        )
        stack.enter_context(
            haproxy(
                [("bulk", ha_bulk, iperf_port, "tcp"), ("rr", ha_rr, web_port, "tcp")],
                threads=args.haproxy_threads,
            )
        )
        stack.enter_context(process([need("iperf3"), "-s", "-p", str(iperf_port)]))
        wait_port(iperf_port)
        stack.enter_context(nginx_small(web_port))
        results: dict[str, dict[str, float]] = {"direct": {}, "protoproxy": {}, "haproxy": {}}
        targets = {
            "direct": (iperf_port, web_port),
            "protoproxy": (pp_bulk, pp_rr),
            "haproxy": (ha_bulk, ha_rr),
        }
        # Interleave rounds so that drift in machine load hits every peer alike.
        for _ in range(args.rounds):
            for name, (bulk, rr) in targets.items():
                results[name].setdefault("gbit", 0.0)
                results[name].setdefault("rps", 0.0)
                results[name]["gbit"] = max(results[name]["gbit"], iperf(bulk, args.seconds))
                results[name]["rps"] = max(results[name]["rps"], wrk(rr, args.seconds, args.conns))
    rows = [("peer", "bulk Gbit/s", "req/s (wrk, 50 conns)", "bulk vs HAProxy", "req/s vs HAProxy")]
    ha = results["haproxy"]
    for name, r in results.items():
        rows.append(
            (
                name,
                f"{r['gbit']:.2f}",
                f"{r['rps']:.0f}",
                f"{r['gbit'] / ha['gbit']:.2f}x",
                f"{r['rps'] / ha['rps']:.2f}x",
            )
        )
    print(
        f"TCP benchmark ({args.seconds:g}s per run, best of {args.rounds}, HAProxy nbthread {args.haproxy_threads})"
    )
    print(table(rows))


if __name__ == "__main__":
    main()
