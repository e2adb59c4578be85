"""HTTP/2 request rate through protoproxy vs HAProxy (h2 mode) vs direct, with h2load.

    python bench/h2_proxy.py [--requests 200000] [--clients 4] [--streams 32]
                             [--rounds 2] [--haproxy-threads 1] [--workload get|grpc|both]
                             [--profile out.svg] [--observe off,metrics,full]
                             [--access-log /tmp/access.log]

The upstream is nginx speaking HTTP/2 over cleartext (prior knowledge). The
proxy runs `protocol: http2`, so it frames every frame, decodes every HPACK
block, tracks stream state and flow control, and counts each request in the
per-route (GET) or per-method (gRPC-shaped POST) metrics: per-call decoding on.
HAProxy runs `mode http` with `proto h2` on both sides and `nbthread 1`, which
terminates and re-originates HTTP/2: more work per request than a passive
relay, in C.

Besides req/s the script reads each proxy's CPU time (the scheduler's
per-thread nanosecond counters, /proc/<pid>/task/*/schedstat) around every
h2load run and prints CPU µs per request.
`--profile FILE` records the protoproxy process with py-spy during one extra
run (flame graph SVG, or speedscope JSON if FILE ends in .json).

`--observe` runs one protoproxy per observability level, side by side in the
same rounds (off: no per-exchange metrics; metrics: the default config; full:
metrics and the access log, to `--access-log` or a temp file), and prints each
level's ratio to HAProxy, its drop against the first level listed, and CPU µs
per request. `--profile` then records the last level listed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import free_port, haproxy, need, nginx_small, protoproxy, table

_TICK = os.sysconf("SC_CLK_TCK")
_SCHEDSTAT = Path("/proc/self/schedstat").exists()
_RATE = re.compile(r"finished in [\d.]+m?s, ([\d.]+) req/s")
_DONE = re.compile(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed")


def cpu_seconds(pid: int) -> float:
    """CPU time of a process (its live threads), in seconds.

    From the scheduler's per-thread nanosecond counters where the kernel has
    them: utime + stime in /proc/<pid>/stat count 10 ms ticks, too coarse for
    a run that costs the proxy a tenth of a second.
    """
    if not _SCHEDSTAT:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    ns = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            ns += int((task / "schedstat").read_text().split()[0])
        except FileNotFoundError:  # the thread ended since the listing
            continue
    return ns / 1e9


def h2load(port: int, args: argparse.Namespace, workload: str, body: Path) -> tuple[float, int]:
    """(req/s, failed) of one h2load run."""
    cmd = [
        need("h2load"),
        "-n",
        str(args.requests),
        "-c",
        str(args.clients),
        "-m",
        str(args.streams),
    ]
    if workload == "grpc":
        cmd += [
            "-d",
            str(body),
            "-H",
            "content-type: application/grpc",
            "-H",
            "te: trailers",
            "-H",
            "grpc-timeout: 5S",
        ]
    out = subprocess.run(
        [*cmd, f"http://127.0.0.1:{port}/pkg.Service/Method"],
        capture_output=True,
        text=True,
        timeout=600,
    ).stdout
    rate, done = _RATE.search(out), _DONE.search(out)
    if rate is None or done is None:
        sys.exit(f"h2load output not understood:\n{out}")
    failed = args.requests - int(done.group(1))
    return float(rate.group(1)), failed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--streams", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--haproxy-threads", type=int, default=1)
    ap.add_argument("--workload", choices=["get", "grpc", "both"], default="both")
    ap.add_argument("--profile", help="py-spy output file for one extra protoproxy run")
    ap.add_argument(
        "--observe",
        default="metrics",
        help="comma-separated observability levels, one protoproxy each: off, metrics "
        "(the default config), full (metrics + access log); see bench/observe_cost.py",
    )
    ap.add_argument(
        "--access-log", help="access log file of the `full` level, replaced (default: temp)"
    )
    args = ap.parse_args()
    # Imported here: observe_cost imports this module at its top.
    from observe_cost import observe_config, observe_drops, observe_levels

    workloads = ["get", "grpc"] if args.workload == "both" else [args.workload]
    levels = observe_levels(args.observe)

    web, ha = free_port(), free_port()
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as d:
        body = Path(d) / "grpc-message"
        body.write_bytes(b"\x00\x00\x00\x00\x0a" + b"\x0a\x08abcdefgh")  # one gRPC message
        log = Path(args.access_log or Path(d) / "access.log")
        log.unlink(missing_ok=True)  # count this run's lines only
        stack.enter_context(nginx_small(web, h2c=True))
        targets: dict[str, tuple[int, subprocess.Popen[bytes] | None]] = {"direct": (web, None)}
        for level, name in levels.items():
            pp = free_port()
            extra = observe_config(level, log)
            targets[name] = (pp, stack.enter_context(protoproxy([("h2", pp, web, "http2")], extra)))
        ha_proc = stack.enter_context(
            haproxy([("h2", ha, web, "http")], threads=args.haproxy_threads)
        )
        targets["haproxy"] = (ha, ha_proc)
        best: dict[tuple[str, str], float] = {}
        cpu: dict[tuple[str, str], float] = {}
        failures: dict[tuple[str, str], int] = {}
        warm = argparse.Namespace(**{**vars(args), "requests": 2000})
        for name in levels.values():
            h2load(targets[name][0], warm, "get", body)
        # Interleave rounds so that drift in machine load hits every peer alike.
        for _ in range(args.rounds):
            for workload in workloads:
                for name, (port, proc) in targets.items():
                    before = cpu_seconds(proc.pid) if proc is not None else 0.0
                    rate, failed = h2load(port, args, workload, body)
                    key = (name, workload)
                    if proc is not None:
                        used = (cpu_seconds(proc.pid) - before) / args.requests * 1e6
                        cpu[key] = min(cpu.get(key, used), used)
                    best[key] = max(best.get(key, 0.0), rate)
                    failures[key] = failures.get(key, 0) + failed
        if args.profile:
            port, proc = targets[list(levels.values())[-1]]
            assert proc is not None
            profile(proc.pid, port, args, body, workloads[-1])
        stack.close()  # the proxies flush their access logs at exit
        lines = sum(1 for _ in log.open()) if "full" in levels else None

    rows = [("peer", "workload", "req/s", "vs HAProxy", "proxy CPU µs/req", "failed")]
    for workload in workloads:
        ha_rate = best[("haproxy", workload)]
        for name in targets:
            key = (name, workload)
            rows.append(
                (
                    name,
                    workload,
                    f"{best[key]:.0f}",
                    f"{best[key] / ha_rate:.2f}x",
                    f"{cpu[key]:.1f}" if key in cpu else "-",
                    str(failures[key]),
                )
            )
    print(
        f"HTTP/2 benchmark: h2load -n {args.requests} -c {args.clients} -m {args.streams}, "
        f"best of {args.rounds}, HAProxy nbthread {args.haproxy_threads}, upstream nginx h2c"
    )
    print(table(rows))
    if len(levels) > 1:
        print(observe_drops(levels, workloads, best, cpu, "haproxy", "vs HAProxy"))
    if lines is not None:
        print(f"access log ({log}): {lines} lines")


def profile(pid: int, port: int, args: argparse.Namespace, body: Path, workload: str) -> None:
    fmt = "speedscope" if args.profile.endswith(".json") else "flamegraph"
    spy = subprocess.Popen(
        [need("py-spy"), "record", "-p", str(pid), "-o", args.profile, "-f", fmt, "-r", "500"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        h2load(port, args, workload, body)
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT only
        spy.wait(30)
    print(f"profile of one {workload} run written to {args.profile}", file=sys.stderr)


if __name__ == "__main__":
    main()
