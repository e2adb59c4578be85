"""What running the fake gRPC service in a child process costs: startup and unary calls/s.

    python bench/testbed_isolation.py [--rounds 3] [--seconds 5] [--concurrency 32]

Both modes side by side, alternating in every round so that the shared
machine's load falls on both: `protoproxy testbed` (gRPC service in a child
process, the default) and `protoproxy testbed --in-process` (grpcio in the
proxy's process, as before). Each run starts the CLI on a scenario of ephemeral
ports (no fixed port is bound), so it runs next to anything.

- startup: seconds from spawning the CLI to its banner's last line, which it
  prints once every service and listener accepts;
- TestbedThread start: seconds for `TestbedThread(...).start()` in this process
  once the modules are imported (what the pytest fixture pays per test);
- calls/s: grpc.aio unary calls through the proxy's grpc listener for
  `--seconds`, `--concurrency` in flight, after a short warm-up.

Prints medians per mode and the ratio isolated / in-process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "codecs")]

from testbed.grpc.client import AioClient  # noqa: E402
from testbed.threaded import TestbedThread  # noqa: E402

MODES = {"isolated": [], "in-process": ["--in-process"]}
SCENARIO = "ports: {}\nkafka: {enabled: false}\nhttp: {enabled: false}\n"
THREAD_SCENARIO = {"kafka": {"brokers": 1}, "http": {"enabled": False}}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), str(ROOT / "codecs"), env.get("PYTHONPATH", "")]
    )
    return env


def start_cli(scenario: Path, flags: list[str]) -> tuple[subprocess.Popen[str], float, str]:
    """The running CLI, its startup seconds, and its grpc listener address."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "protoproxy", "testbed", str(scenario), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=_env(),
    )
    assert proc.stdout is not None
    grpc_address = ""
    for line in proc.stdout:
        if match := re.match(r"\s+grpc\s+(\S+)", line):
            grpc_address = match.group(1)
        if line.startswith("Press Ctrl-C"):
            return proc, time.perf_counter() - started, grpc_address
    raise RuntimeError(f"protoproxy testbed exited with {proc.wait()}")


def stop_cli(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)


async def calls_per_second(address: str, seconds: float, concurrency: int) -> float:
    async with AioClient.connect(address) as client:
        for _ in range(200):  # warm-up: connection, HPACK tables, the proxy's code paths
            await client.unary()
        done = 0
        end = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < end:
                result = await client.unary()
                assert result.ok, result
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - started)


def thread_start(in_process: bool) -> float:
    scenario = {**THREAD_SCENARIO, "grpc": {"in_process": in_process}}
    tb = TestbedThread(scenario)
    started = time.perf_counter()
    tb.start()
    elapsed = time.perf_counter() - started
    tb.stop()
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()
    results: dict[str, dict[str, list[float]]] = {
        mode: {"startup": [], "thread": [], "rate": []} for mode in MODES
    }
    thread_start(True)  # import everything once (grpcio included: the client needs it)
    with tempfile.TemporaryDirectory() as tmp:
        scenario = Path(tmp) / "scenario.yaml"
        scenario.write_text(SCENARIO)
        for r in range(args.rounds):
            for mode, flags in MODES.items():
                proc, startup, address = start_cli(scenario, flags)
                try:
                    rate = asyncio.run(calls_per_second(address, args.seconds, args.concurrency))
                finally:
                    stop_cli(proc)
                thread = thread_start(mode == "in-process")
                results[mode]["startup"].append(startup)
                results[mode]["thread"].append(thread)
                results[mode]["rate"].append(rate)
                print(
                    f"round {r + 1} {mode:<10} startup {startup:.3f}s  "
                    f"TestbedThread start {thread * 1000:.0f} ms  unary {rate:,.0f}/s",
                    flush=True,
                )
    med = {m: {k: statistics.median(v) for k, v in d.items()} for m, d in results.items()}
    iso, inp = med["isolated"], med["in-process"]
    print()
    print(f"{'median':<22}{'isolated':>12}{'in-process':>12}{'ratio':>8}")
    print(
        f"{'CLI startup (s)':<22}{iso['startup']:>12.3f}{inp['startup']:>12.3f}"
        f"{iso['startup'] / inp['startup']:>8.2f}"
    )
    print(
        f"{'TestbedThread (ms)':<22}{iso['thread'] * 1000:>12.0f}{inp['thread'] * 1000:>12.0f}"
        f"{iso['thread'] / inp['thread']:>8.2f}"
    )
    print(
        f"{'unary calls/s':<22}{iso['rate']:>12,.0f}{inp['rate']:>12,.0f}"
        f"{iso['rate'] / inp['rate']:>8.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
