"""Cases per second of `protoproxy fuzz kafka` against the fake cluster, through the proxy
and --direct.

    python bench/fuzz_kafka.py [--seconds 60] [--seed 1] [--brokers 1] [--stateful]

The fake cluster (a TestbedThread with Kafka only) runs in this process; each
`protoproxy fuzz kafka --seconds N` runs in a child process (its own GIL: the
fuzzer, and the proxy front it starts, do not share one with the brokers),
first through the proxy, then with --direct, against the same broker. Prints
cases/s for each, the ratio proxy / direct, and how many labels each covered;
exits 1 if either run found a failure (the fake must raise no false alarm).
Stateless cases only unless --stateful.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "codecs")]

from common import fuzz_summary  # noqa: E402

from testbed.threaded import TestbedThread  # noqa: E402


def fuzz(target: str, out: Path, seconds: float, seed: int, extra: list[str]) -> dict:
    """One `protoproxy fuzz kafka` run in a child process; its report.json."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "codecs")])}
    cmd = [sys.executable, "-m", "protoproxy.fuzz.cli", "fuzz", "kafka", "--target", target]
    cmd += ["--out", str(out), "--seconds", f"{seconds:g}", "--seed", str(seed), "--quiet"]
    proc = subprocess.run(
        [*cmd, *extra], env=env, capture_output=True, text=True, timeout=seconds + 120
    )
    if proc.returncode not in (0, 1):
        raise SystemExit(f"fuzz exited {proc.returncode}:\n{proc.stderr}")
    report: dict = json.loads((out / "report.json").read_text())
    report["stderr"] = proc.stderr
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--brokers", type=int, default=1)
    ap.add_argument("--stateful", action="store_true", help="include the state machine")
    args = ap.parse_args()
    scenario = {
        "grpc": {"enabled": False},
        "http": {"enabled": False},
        "echo": {"enabled": False},
        "tail": False,
        "kafka": {"brokers": args.brokers},
    }
    extra = [] if args.stateful else ["--no-stateful"]
    runs: dict[str, dict] = {}
    with TestbedThread(scenario) as tb, tempfile.TemporaryDirectory() as tmp:
        broker = tb.call(lambda t: t.services["kafka"].bootstrap_servers).split(",")[0]
        for name, flags in (("proxy", []), ("direct", ["--direct"])):
            runs[name] = fuzz(broker, Path(tmp) / name, args.seconds, args.seed, extra + flags)
    print(f"protoproxy fuzz kafka, {args.seconds:g} s each, seed {args.seed}, fake cluster")
    sys.exit(1 if fuzz_summary(runs) else 0)


if __name__ == "__main__":
    main()
